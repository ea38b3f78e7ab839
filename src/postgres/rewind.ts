import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { PgrepError } from "../errors.js";
import { cleanlyShutDown, DB_STATE, readControl } from "./control.js";
import { replicationConninfo } from "./replication.js";

/**
 * pg_rewind of a former primary against the current one: only the blocks that diverged are copied. Needs
 * wal_log_hints (setup turns it on) or checksums, the same major's pg_rewind, and a cleanly stopped target.
 * A target that crashed gets its crash recovery from pgrep first, on every major: pg_rewind's own (13+)
 * cannot find a postgresql.conf kept outside the data directory before 15 (Debian), and none runs with a
 * standby marker present.
 */
export async function rewind(spec: ClusterSpec, h: HostSpec, s: ReachableHost, source: HostSpec, restartAsStandby: () => Promise<void>): Promise<void> {
  const pgRewind = `${s.layout.binDir}/pg_rewind`;
  const has = await s.transport.run(["test", "-x", pgRewind], { allowFailure: true });
  if (has.exitCode !== 0) throw new PgrepError(`${h.name}: no pg_rewind of PostgreSQL ${s.caps.major} in ${s.layout.binDir}`, { hint: "install the server package of that major, or pass --allow-reclone" });
  const control = await readControl(s.transport, s.layout.dataDir, s.layout.admin);
  // A standby that stopped uncleanly finishes its recovery as a standby (a crash recovery would end
  // recovery at its last checkpoint's timeline, short of what its pages already hold); a primary in
  // single-user mode.
  if (control?.state === DB_STATE.inArchiveRecovery) await restartAsStandby();
  else if (control && !cleanlyShutDown(control)) await finishCrashRecovery(h, s);
  const args = [
    pgRewind,
    `--target-pgdata=${s.layout.dataDir}`,
    `--source-server=${replicationConninfo(spec, s.layout, source, { dbname: "postgres" })}`,
  ];
  await s.transport.run(args, { user: h.pg.osUser, what: "pg_rewind", timeoutMs: 3_600_000 });
}

// Single-user mode refuses to start with a standby marker ("standby mode is not supported by single-user
// servers"): they are set aside for the recovery and put back, whatever its outcome.
const CRASH_RECOVERY = [
  'd=$1; shift; saved="$d/pgrep-markers.saved"; mkdir -p "$saved" || exit 1',
  'for f in standby.signal recovery.signal recovery.conf; do [ -e "$d/$f" ] && mv "$d/$f" "$saved/"; done',
  '"$@" </dev/null; rc=$?',
  'for f in "$saved"/*; do [ -e "$f" ] && mv "$f" "$d/"; done; rmdir "$saved"',
  "exit $rc",
].join("\n");

/** Replays the crashed server's WAL in single-user mode, which ends with a clean shutdown. */
async function finishCrashRecovery(h: HostSpec, s: ReachableHost): Promise<void> {
  const config = s.layout.includeLine ? [] : ["-c", `config_file=${s.layout.mainConf}`];
  await s.transport.run(["sh", "-c", CRASH_RECOVERY, "sh", s.layout.dataDir, `${s.layout.binDir}/postgres`, "--single", "-D", s.layout.dataDir, ...config, "postgres"], {
    user: h.pg.osUser,
    what: "crash recovery in single-user mode",
    timeoutMs: 3_600_000,
  });
}
