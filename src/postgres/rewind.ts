import type { ClusterSpec, HostSpec } from "../cluster/model.js";
import type { ReachableHost } from "../cluster/state.js";
import { PgrepError } from "../errors.js";
import { cleanlyShutDown, readControl } from "./control.js";
import { replicationConninfo } from "./replication.js";

/**
 * pg_rewind of a former primary against the current one: only the blocks that diverged are copied. Needs
 * wal_log_hints (setup turns it on) or checksums, the same major's pg_rewind, and a cleanly stopped target
 * (13+ finishes crash recovery by itself; for older majors pgrep does it in single-user mode first).
 */
export async function rewind(spec: ClusterSpec, h: HostSpec, s: ReachableHost, source: HostSpec): Promise<void> {
  const pgRewind = `${s.layout.binDir}/pg_rewind`;
  const has = await s.transport.run(["test", "-x", pgRewind], { allowFailure: true });
  if (has.exitCode !== 0) throw new PgrepError(`${h.name}: no pg_rewind of PostgreSQL ${s.caps.major} in ${s.layout.binDir}`, { hint: "install the server package of that major, or pass --allow-reclone" });
  const control = await readControl(s.transport, s.layout.dataDir, s.layout.admin);
  if (control && !cleanlyShutDown(control) && !s.caps.rewindWritesConfig) {
    // Before 13, pg_rewind refuses a target that was not shut down cleanly: run crash recovery first.
    const config = s.layout.includeLine ? [] : ["-c", `config_file=${s.layout.mainConf}`];
    await s.transport.run(["sh", "-c", 'exec "$@" </dev/null', "sh", `${s.layout.binDir}/postgres`, "--single", "-D", s.layout.dataDir, ...config, "postgres"], {
      user: h.pg.osUser,
      what: "crash recovery in single-user mode",
    });
  }
  const args = [
    pgRewind,
    `--target-pgdata=${s.layout.dataDir}`,
    `--source-server=${replicationConninfo(spec, s.layout, source, { dbname: "postgres" })}`,
    // Debian keeps postgresql.conf in /etc; pg_rewind (15+) needs it to run crash recovery on the target.
    ...(s.layout.includeLine === null && s.caps.rewindHasConfigFile ? [`--config-file=${s.layout.mainConf}`] : []),
  ];
  await s.transport.run(args, { user: h.pg.osUser, what: "pg_rewind", timeoutMs: 3_600_000 });
}
