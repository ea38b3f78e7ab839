import { withoutSettings } from "../postgres/files.js";
import type { HostSpec } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { CommandError, lastLines, PgrepError, type RunResult } from "../errors.js";
import { runSql } from "../postgres/sql.js";
import { recordCreated } from "../state-store.js";
import { readFileText, writeFileAtomic } from "../transport/files.js";
import { sqlTarget, type ExecContext } from "./context.js";

// Effects on one host that several steps share.

const CONTROL_TIMEOUT_MS = 180_000;

export async function control(h: HostSpec, s: ReachableHost, action: "start" | "stop" | "reload" | "restart"): Promise<void> {
  const run = (a: "start" | "stop" | "reload" | "restart", allowFailure = false) =>
    s.transport.run(s.layout.control[a].argv, { user: s.layout.control[a].user, what: `${a} PostgreSQL`, timeoutMs: CONTROL_TIMEOUT_MS, allowFailure });
  try {
    if (!s.layout.startLingers || (action !== "start" && action !== "restart")) {
      await run(action);
      return;
    }
    if (action === "restart") {
      // pg_ctlcluster restart is stop, then start: the same, with the start watched as below.
      const stopped = await run("stop", true);
      if (stopped.exitCode !== 0 && stopped.exitCode !== NOT_RUNNING) throw new CommandError(stopped, "stop PostgreSQL");
    }
    await startWatched(h, s);
  } catch (e) {
    throw await withServerLog(s, e as Error);
  }
}

/** pg_ctlcluster's exit status for "the cluster is not running". */
const NOT_RUNNING = 2;

/**
 * Starts the server and returns as soon as the server of this data directory accepts connections, or when
 * the start command ends, whichever is first. What comes next proves more than the start command's own
 * checks would (a standby must be seen streaming; a primary answers the next step's SQL).
 */
async function startWatched(h: HostSpec, s: ReachableHost): Promise<void> {
  const cmd = s.layout.control.start;
  const child = s.transport.spawn(cmd.argv, { user: cmd.user });
  child.end();
  let ended: RunResult | undefined;
  void child.done.then((r) => (ended = r));
  const target = sqlTarget(h, s);
  const deadline = Date.now() + CONTROL_TIMEOUT_MS;
  for (;;) {
    const dir = await runSql(target, "SELECT current_setting('data_directory')").catch(() => "");
    if (dir === s.layout.dataDir) {
      // The start command's own checks (a psql every 0.5 s) would go on after pgrep moved on, even after it
      // ended: they are ended here, and waited for, so that nothing of pgrep's still runs on the host. The
      // server has its own session and stays.
      if (!ended) {
        child.kill();
        // The bound's timer is cleared: left pending, it kept pgrep from exiting for its 2 s.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([child.done, new Promise((r) => (timer = setTimeout(r, 2_000)))]);
        clearTimeout(timer);
      }
      return;
    }
    if (ended) {
      if (ended.exitCode === 0) return;
      throw new CommandError(ended, "start PostgreSQL");
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new PgrepError(`${h.name}: PostgreSQL did not accept connections within ${CONTROL_TIMEOUT_MS / 1000} s of its start`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Adds the last lines of the server log to an error: why PostgreSQL did not start is usually there. */
export async function withServerLog(s: ReachableHost, e: Error): Promise<Error> {
  const r = await s.transport.run(["sh", "-c", 'f=$1; [ -d "$f" ] && f=$(ls -t "$f"/* 2>/dev/null | head -n 1); tail -n 4 "$f"', "sh", s.layout.serverLog], {
    user: s.layout.admin,
    allowFailure: true,
  });
  const tail = r.exitCode === 0 ? lastLines(r.stdout, 4) : "";
  return tail ? new PgrepError(`${e.message} — server log ${s.layout.serverLog}: ${tail}`, { cause: e }) : e;
}

/** The data directory exists, belongs to the PostgreSQL OS user and is private (0700). */
export async function prepareDataDir(s: ReachableHost, h: HostSpec): Promise<void> {
  const owner = s.layout.admin === "root" ? [`chown ${h.pg.osUser}: "$1"`] : [];
  await s.transport.run(["sh", "-c", ['set -e; mkdir -p "$1"', ...owner, 'chmod 700 "$1"'].join("; "), "sh", s.layout.dataDir], { user: s.layout.admin });
}

export async function createCluster(ctx: ExecContext, h: HostSpec, s: ReachableHost): Promise<void> {
  if (h.pg.layout !== "debian") await prepareDataDir(s, h);
  const c = s.layout.createCluster;
  await s.transport.run(c.argv, { user: c.user, what: "creating the cluster" });
  await recordCreated(ctx.spec.stateDir, {
    host: h.name,
    kind: "data_dir",
    path: s.layout.dataDir,
    ...(h.pg.layout === "debian" ? { debianCluster: `${s.caps.major}/${h.pg.clusterName}` } : {}),
  });
}

/** Reads the system identifier straight from pg_control (its first 8 bytes on every major). */
export async function readSysid(s: ReachableHost): Promise<{ sysid: string | undefined; running: boolean }> {
  const r = await s.transport.run(
    ["sh", "-c", 'd="$1"; [ -r "$d/global/pg_control" ] && od -An -t u8 -N8 "$d/global/pg_control" | tr -d " "; p=$(sed -n 1p "$d/postmaster.pid" 2>/dev/null); [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo running; true', "sh", s.layout.dataDir],
    { user: s.layout.admin },
  );
  const lines = r.stdout.split("\n").filter(Boolean);
  return { sysid: lines.find((l) => /^\d+$/.test(l)), running: lines.includes("running") };
}

export async function emptyDataDir(s: ReachableHost, keep: string[] = []): Promise<void> {
  const spare = keep.flatMap((k) => ["!", "-name", k]);
  await s.transport.run(["find", s.layout.dataDir, "-mindepth", "1", "-maxdepth", "1", ...spare, "-exec", "rm", "-rf", "--", "{}", "+"], {
    user: s.layout.admin,
    what: "emptying the data directory",
  });
}

/** The upstream's postgresql.auto.conf came along; a primary_conninfo there would override pgrep's. */
export function dropCopiedConninfo(h: HostSpec, s: ReachableHost): Promise<void> {
  return dropAutoConf(h, s, ["primary_conninfo", "primary_slot_name"]);
}

/** Takes settings out of postgresql.auto.conf: while the server is stopped (ALTER SYSTEM RESET needs it running). */
export async function dropAutoConf(h: HostSpec, s: ReachableHost, names: string[]): Promise<void> {
  const path = `${s.layout.dataDir}/postgresql.auto.conf`;
  const auto = await readFileText(s.transport, path, s.layout.admin);
  if (!auto) return;
  const cleaned = withoutSettings(auto, names);
  if (cleaned === auto) return;
  await writeFileAtomic(s.transport, path, cleaned, { owner: s.layout.admin === "root" ? `${h.pg.osUser}:` : "", mode: 0o600, asUser: s.layout.admin });
}
