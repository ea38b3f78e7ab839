import type { ClusterSpec, HostSpec } from "../cluster/model.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import { PgrepError, RefusedError, lastLines } from "../errors.js";
import { conninfo, mergePgpass } from "../postgres/files.js";
import { runSql, sqlIdent, sqlLiteral, type SqlTarget } from "../postgres/sql.js";
import { scramVerifier } from "../postgres/scram.js";
import { pgpassEntries } from "../cluster/observe.js";
import { recordCreated } from "../state-store.js";
import { readFileText, writeFileAtomic } from "../transport/files.js";
import { applyEdit } from "./setup.js";
import { describeStep, type Plan, type Step } from "./steps.js";

export interface Reporter {
  step(host: string, text: string): void;
  done(host: string, text: string, ms: number): void;
  info(text: string): void;
}

export interface ExecContext {
  spec: ClusterSpec;
  snap: ClusterSnapshot;
  password: string;
  report: Reporter;
  /** Bounded waits (ms). */
  streamTimeoutMs: number;
}

/** Runs the plan: phases in order, the lanes of a phase in parallel. A failed lane stops; the others finish. */
export async function executePlan(plan: Plan, ctx: ExecContext): Promise<void> {
  for (const phase of plan.phases) {
    const results = await Promise.allSettled(
      phase.lanes.map(async (lane) => {
        for (const step of lane.steps) {
          const started = Date.now();
          ctx.report.step(lane.host, `${describeStep(step)} — ${step.why}`);
          const note = await runStep(step, ctx);
          ctx.report.done(lane.host, note ?? describeStep(step), Date.now() - started);
        }
      }),
    );
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed.length === 1) throw failed[0]!.reason;
    if (failed.length > 1) {
      const reasons = failed.map((f) => (f.reason as Error).message);
      throw new PgrepError(reasons.join("\n"), { cause: failed[0]!.reason });
    }
  }
}

function hostOf(ctx: ExecContext, name: string): { spec: HostSpec; state: ReachableHost } {
  const spec = ctx.spec.hosts.find((h) => h.name === name)!;
  return { spec, state: ctx.snap.hosts.get(name) as ReachableHost };
}

function sqlTarget(spec: HostSpec, s: ReachableHost): SqlTarget {
  return { t: s.transport, dataDir: s.layout.dataDir, psql: s.psql ?? "psql", osUser: spec.pg.osUser };
}

async function runStep(step: Step, ctx: ExecContext): Promise<string | void> {
  const { spec: h, state: s } = hostOf(ctx, step.host);
  const t = s.transport;
  const L = s.layout;
  switch (step.kind) {
    case "create-cluster":
      await createCluster(ctx, h, s);
      return `created the cluster in ${L.dataDir}`;
    case "edit-file": {
      const current = step.edit.type === "replace" ? null : await readFileText(t, step.file.path, L.admin);
      await writeFileAtomic(t, step.file.path, applyEdit(current, step.edit), { owner: step.file.owner, mode: step.file.mode, asUser: L.admin });
      return `wrote ${step.file.path}`;
    }
    case "remove-file":
      await t.run(["rm", "-f", "--", step.path], { user: L.admin });
      return;
    case "write-passfile": {
      // The content holds the password: it travels on stdin and is never logged.
      const current = await readFileText(t, step.file.path, L.admin);
      await writeFileAtomic(t, step.file.path, mergePgpass(current ?? "", pgpassEntries(ctx.spec, ctx.password)), { owner: step.file.owner, mode: 0o600, asUser: L.admin });
      if (current === null) await recordCreated(ctx.spec.stateDir, { host: h.name, kind: "file", path: step.file.path });
      return `wrote ${step.file.path} (0600)`;
    }
    case "control":
      await control(s, step.action);
      return;
    case "restart-if-pending": {
      const pending = (await runSql(sqlTarget(h, s), "SELECT string_agg(name, ',') FROM pg_settings WHERE pending_restart")).trim();
      if (!pending) return "no restart needed";
      await control(s, "restart");
      return `restarted for ${pending.split(",").join(", ")}`;
    }
    case "ensure-role": {
      const u = ctx.spec.replicationUser;
      // A SCRAM verifier, not the password, goes to the server; statement logging is off for this session.
      await runSql(
        sqlTarget(h, s),
        `SET log_statement = 'none'; SET log_min_duration_statement = -1;
DO $pgrep$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${sqlLiteral(u)}) THEN CREATE ROLE ${sqlIdent(u)}; END IF;
END $pgrep$;
ALTER ROLE ${sqlIdent(u)} WITH LOGIN REPLICATION PASSWORD ${sqlLiteral(scramVerifier(ctx.password))};`,
        "setting up the replication role",
      );
      return `role ${u} has LOGIN REPLICATION and the current password (SCRAM)`;
    }
    case "clone":
      return clone(ctx, step, h, s);
    case "wait-streaming":
      return waitStreaming(ctx, h, s, step.upstream);
  }
}

async function control(s: ReachableHost, action: "start" | "stop" | "reload" | "restart"): Promise<void> {
  const cmd = s.layout.control[action];
  try {
    await s.transport.run(cmd.argv, { user: cmd.user, what: `${action} PostgreSQL`, timeoutMs: 180_000 });
  } catch (e) {
    throw await withServerLog(s, e as Error);
  }
}

/** Adds the last lines of the server log to an error: why PostgreSQL did not start is usually there. */
async function withServerLog(s: ReachableHost, e: Error): Promise<Error> {
  const r = await s.transport.run(["tail", "-n", "4", s.layout.serverLog], { user: s.layout.admin, allowFailure: true });
  const tail = r.exitCode === 0 ? lastLines(r.stdout, 4) : "";
  return tail ? new PgrepError(`${e.message} — server log ${s.layout.serverLog}: ${tail}`, { cause: e }) : e;
}

async function prepareDataDir(s: ReachableHost, h: HostSpec): Promise<void> {
  const d = s.layout.dataDir;
  const owner = s.layout.admin === "root" ? [`chown ${h.pg.osUser}: "$1"`] : [];
  await s.transport.run(["sh", "-c", ['set -e; mkdir -p "$1"', ...owner, 'chmod 700 "$1"'].join("; "), "sh", d], { user: s.layout.admin });
}

async function createCluster(ctx: ExecContext, h: HostSpec, s: ReachableHost): Promise<void> {
  if (h.pg.layout === "generic") await prepareDataDir(s, h);
  const c = s.layout.createCluster;
  await s.transport.run(c.argv, { user: c.user, what: "creating the cluster" });
  await recordCreated(ctx.spec.stateDir, { host: h.name, kind: "data_dir", path: s.layout.dataDir, ...(h.pg.layout === "debian" ? { debianCluster: `${s.caps.major}/${h.pg.clusterName}` } : {}) });
}

/** Reads the system identifier straight from pg_control (the first 8 bytes; same on every major). */
async function readSysid(s: ReachableHost): Promise<{ sysid: string | undefined; running: boolean }> {
  const r = await s.transport.run(
    ["sh", "-c", 'd="$1"; [ -r "$d/global/pg_control" ] && od -An -t u8 -N8 "$d/global/pg_control" | tr -d " "; p=$(sed -n 1p "$d/postmaster.pid" 2>/dev/null); [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo running; true', "sh", s.layout.dataDir],
    { user: s.layout.admin },
  );
  const lines = r.stdout.split("\n").filter(Boolean);
  return { sysid: lines.find((l) => /^\d+$/.test(l)), running: lines.includes("running") };
}

async function clone(ctx: ExecContext, step: Extract<Step, { kind: "clone" }>, h: HostSpec, s: ReachableHost): Promise<string> {
  const { spec: uh, state: us } = hostOf(ctx, step.from);
  const L = s.layout;
  const primarySysid = (await runSql(sqlTarget(uh, us), "SELECT system_identifier FROM pg_control_system()")).trim();
  let createdNow = false;
  if (h.pg.layout === "debian" && s.files.mainConf === null) {
    // Debian keeps the configuration in /etc; pg_basebackup brings only the data directory.
    await createCluster(ctx, h, s);
    createdNow = true;
  } else if (h.pg.layout === "generic") await prepareDataDir(s, h);
  let now = await readSysid(s);
  if (now.running) {
    await control(s, "stop");
    now = await readSysid(s);
  }
  // Checked again right before deleting: the host may have changed since it was observed.
  if (now.running) throw new RefusedError(`${h.name}: PostgreSQL is still running in ${L.dataDir}; not replacing its data`);
  if (!createdNow && now.sysid !== step.expectSysid && now.sysid !== primarySysid)
    throw new RefusedError(`${h.name}: ${L.dataDir} changed since it was checked (system identifier ${now.sysid ?? "none"}); not replacing it`, "run setup again");
  await s.transport.run(["find", L.dataDir, "-mindepth", "1", "-delete"], { user: L.admin, what: "emptying the data directory" });
  const args = [
    s.pgBasebackup!,
    "--pgdata", L.dataDir,
    "--wal-method=stream",
    "--checkpoint=fast",
    "--no-password",
    "--dbname", standbyCloneConninfo(ctx, h, s, uh),
  ];
  try {
    await s.transport.run(args, { user: h.pg.osUser, what: "pg_basebackup" });
  } catch (e) {
    // pg_basebackup removes what it wrote; make sure nothing half-made is left to be mistaken for a standby.
    await s.transport.run(["find", L.dataDir, "-mindepth", "1", "-delete"], { user: L.admin, allowFailure: true });
    throw e;
  }
  if (!createdNow) await recordCreated(ctx.spec.stateDir, { host: h.name, kind: "data_dir", path: L.dataDir });
  if (s.caps.standbyMechanism === "standby.signal") {
    // The primary's postgresql.auto.conf came along; a primary_conninfo there would override pgrep's.
    const auto = await readFileText(s.transport, `${L.dataDir}/postgresql.auto.conf`, L.admin);
    if (auto && /^\s*primary_(conninfo|slot_name)\s*=/m.test(auto)) {
      const cleaned = auto.split("\n").filter((l) => !/^\s*primary_(conninfo|slot_name)\s*=/.test(l)).join("\n");
      await writeFileAtomic(s.transport, `${L.dataDir}/postgresql.auto.conf`, cleaned, { owner: L.admin === "root" ? `${h.pg.osUser}:` : "", mode: 0o600, asUser: L.admin });
    }
  }
  return `cloned ${step.from} into ${L.dataDir} (system identifier ${primarySysid})`;
}

function standbyCloneConninfo(ctx: ExecContext, h: HostSpec, s: ReachableHost, upstream: HostSpec): string {
  return conninfo({ host: upstream.address, port: upstream.pg.port, user: ctx.spec.replicationUser, passfile: s.layout.passfile, application_name: `pgrep_clone_${h.name}` });
}

async function waitStreaming(ctx: ExecContext, h: HostSpec, s: ReachableHost, upstreamName: string): Promise<string> {
  const { spec: uh, state: us } = hostOf(ctx, upstreamName);
  const deadline = Date.now() + ctx.streamTimeoutMs;
  let last = "";
  for (;;) {
    const [onUpstream, inRecovery] = await Promise.all([
      runSql(sqlTarget(uh, us), `SELECT coalesce((SELECT state FROM pg_stat_replication WHERE application_name = ${sqlLiteral(h.name)} ORDER BY state = 'streaming' DESC LIMIT 1), 'absent')`).catch((e: Error) => `error: ${e.message}`),
      runSql(sqlTarget(h, s), "SELECT pg_is_in_recovery()").catch((e: Error) => `error: ${e.message}`),
    ]);
    if (onUpstream.trim() === "streaming" && inRecovery.trim() === "t") return `streaming from ${upstreamName}, read-only`;
    last = `${upstreamName} sees it as '${onUpstream.trim()}', in recovery: '${inRecovery.trim()}'`;
    if (Date.now() > deadline) {
      throw await withServerLog(s, new PgrepError(`${h.name}: not streaming after ${Math.round(ctx.streamTimeoutMs / 1000)}s (${last})`));
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
