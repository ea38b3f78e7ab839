import { PgrepError } from "../errors.js";
import { mergePgpass } from "../postgres/files.js";
import { createRoleIfMissing, runSql, sqlIdent, sqlLiteral } from "../postgres/sql.js";
import { passwordVerifier, scramVerifier } from "../postgres/scram.js";
import { appRolesSql, connectSql, createDatabaseSql } from "../postgres/app-objects.js";
import { REWIND_FUNCTIONS } from "../postgres/versions.js";
import { createSlotsSql, dropSlotsSql, dropSlotWhenFreeSql } from "../postgres/replication.js";
import { pgpassEntries } from "../cluster/observe.js";
import { TIMELINE_SQL } from "../cluster/positions.js";
import type { HostSpec } from "../model/cluster.js";
import { recordCreated } from "../state-store.js";
import { readFileText, replaceFileIfUnchanged, writeFileAtomic } from "../transport/files.js";
import { observedContent, type ReachableHost } from "../cluster/state.js";
import { clone } from "./clone.js";
import { hostOf, sqlTarget, type ExecContext } from "./context.js";
import { control, createCluster, dropAutoConf, withServerLog } from "./host-ops.js";
import { applyEdit } from "../plan/setup.js";
import { describeStep, type Plan, type Step } from "../plan/steps.js";

export type { ExecContext, Reporter } from "./context.js";

/** Runs the plan: phases in order, the lanes of a phase in parallel. A failed lane stops; the others finish. */
export async function executePlan(plan: Plan, ctx: ExecContext): Promise<void> {
  for (const phase of plan.phases) {
    const results = await Promise.allSettled(
      phase.lanes.map(async (lane) => {
        for (const batch of batches(lane.steps)) {
          await Promise.all(
            batch.map(async (step) => {
              const started = Date.now();
              ctx.report.step(step.host, `${describeStep(step)} — ${step.why}`);
              const note = await runStep(step, ctx);
              ctx.report.done(step.host, note ?? describeStep(step), Date.now() - started);
            }),
          );
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

/**
 * A lane's steps in order, in groups run together: consecutive file edits of different files do not depend
 * on each other, so they are written at the same time (a reload after them waits for all).
 */
export function batches(steps: readonly Step[]): Step[][] {
  const out: Step[][] = [];
  for (const step of steps) {
    const last = out.at(-1);
    const together = step.kind === "edit-file" && last?.every((x) => x.kind === "edit-file" && x.file.path !== step.file.path);
    if (together) last!.push(step);
    else out.push([step]);
  }
  return out;
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
      const opts = { owner: step.file.owner, mode: step.file.mode, asUser: L.admin };
      if (step.edit.type !== "replace") {
        // An edit of what observe read, written only if the file still holds it: one round trip, not two.
        const seen = observedContent(s, step.file.path);
        if (seen !== undefined && (await replaceFileIfUnchanged(t, step.file.path, seen, applyEdit(seen, step.edit), opts))) return `wrote ${step.file.path}`;
      }
      const current = step.edit.type === "replace" ? null : await readFileText(t, step.file.path, L.admin);
      await writeFileAtomic(t, step.file.path, applyEdit(current, step.edit), opts);
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
    case "write-tls": {
      const m = ctx.tls?.hosts.get(h.name);
      if (!ctx.tls || !m) throw new PgrepError(`${h.name}: no TLS certificate for this host (internal: the plan needs TLS material)`);
      const owner = step.owner;
      // Like the passfile, the key travels on stdin and is never logged; the directory is private to PostgreSQL.
      await t.run(["sh", "-c", 'mkdir -p "$1" && chmod 700 "$1" && { [ -z "$2" ] || chown "$2" "$1"; }', "sh", step.dir, owner], { user: L.admin, what: `creating ${step.dir}` });
      await writeFileAtomic(t, `${step.dir}/ca.crt`, ctx.tls.ca, { owner, mode: 0o644, asUser: L.admin });
      await writeFileAtomic(t, `${step.dir}/server.crt`, m.cert, { owner, mode: 0o644, asUser: L.admin });
      await writeFileAtomic(t, `${step.dir}/server.key`, m.key, { owner, mode: 0o600, asUser: L.admin });
      await recordCreated(ctx.spec.stateDir, { host: h.name, kind: "file", path: step.dir });
      return `wrote ${step.dir}/{ca.crt,server.crt,server.key}`;
    }
    case "control":
      await control(h, s, step.action);
      return;
    case "restart-if-pending": {
      const pending = (await runSql(sqlTarget(h, s), "SELECT string_agg(name, ',') FROM pg_settings WHERE pending_restart")).trim();
      if (!pending) return "no restart needed";
      await control(h, s, "restart");
      return `restarted for ${pending.split(",").join(", ")}`;
    }
    case "reset-auto-conf": {
      // Names as parseSettings read them ([A-Za-z_][A-Za-z0-9_.]*): a dotted one is not one identifier.
      if (s.running && s.sql) await runSql(sqlTarget(h, s), step.settings.map((n) => `ALTER SYSTEM RESET ${n};`).join("\n"), "ALTER SYSTEM RESET");
      else await dropAutoConf(h, s, step.settings);
      return `reset ${step.settings.join(", ")}: pgrep's settings apply`;
    }
    case "ensure-role": {
      const u = ctx.spec.replicationUser;
      // A verifier (SCRAM, or md5 when asked), not the password, goes to the server; statement logging is off for this session.
      await runSql(
        sqlTarget(h, s),
        `${QUIET_SESSION}
${createRoleIfMissing(u)}
ALTER ROLE ${sqlIdent(u)} WITH LOGIN REPLICATION PASSWORD ${sqlLiteral(passwordVerifier(ctx.spec.passwordEncryption, ctx.password, u))};
${s.caps.rewindWithoutSuperuser ? REWIND_FUNCTIONS.map((f) => `GRANT EXECUTE ON FUNCTION ${f} TO ${sqlIdent(u)};`).join("\n") : ""}`,
        "setting up the replication role",
      );
      return `role ${u} has LOGIN REPLICATION, the current password (${ctx.spec.passwordEncryption === "md5" ? "md5" : "SCRAM"}) and what pg_rewind needs`;
    }
    case "app-roles": {
      const verifiers = new Map<string, string>();
      for (const n of step.roles) {
        const pw = ctx.appPasswords?.get(n);
        if (pw === undefined) throw new PgrepError(`${h.name}: no password for the application role ${n} (internal: setup loads them)`);
        verifiers.set(n, scramVerifier(pw));
      }
      // Like the replication role: only verifiers reach the server, and this session logs no statements.
      await runSql(sqlTarget(h, s), `${QUIET_SESSION}\n${appRolesSql(step.roles, verifiers)}`, "creating the application roles");
      return `role${step.roles.length > 1 ? "s" : ""} ${step.roles.join(", ")}: LOGIN and the inventory's password (SCRAM)`;
    }
    case "app-databases": {
      const wanted = (n: string) => ctx.spec.apps.databases.find((d) => d.name === n)!;
      const sql = [...step.create.map((n) => createDatabaseSql(wanted(n))), ...step.connect.map((n) => connectSql(wanted(n)))];
      await runSql(sqlTarget(h, s), `SET synchronous_commit = local;\n${sql.join("\n")}`, "creating the application databases");
      return describeStep(step);
    }
    case "slots": {
      // Made before a standby's copy starts: its WAL is kept from then on.
      await runSql(sqlTarget(h, s), [createSlotsSql(step.create), dropSlotsSql(step.drop)].join("\n"), "replication slots");
      return describeStep(step);
    }
    case "drop-slot": {
      const [, left] = (await runSql(sqlTarget(h, s), dropSlotWhenFreeSql(step.slot, 10), `dropping slot ${step.slot}`)).trim().split("\n");
      if (left !== "0") throw new PgrepError(`${h.name}: the slot ${step.slot} is still in use 10 s after its standby moved to its own; it holds WAL`, { hint: `see who streams through it: SELECT * FROM pg_replication_slots WHERE slot_name = '${step.slot}'` });
      return `dropped the slot ${step.slot}`;
    }
    case "clone":
      return clone(ctx, step, h, s);
    case "wait-streaming":
      return waitStreaming(ctx, h, s, step.upstream);
    case "catch-up":
      return catchUp(ctx, h, s, step.primary);
    case "switchover":
      throw new PgrepError(`${step.host}: a switchover runs from its command, not inside a plan (internal)`);
  }
}

async function catchUp(ctx: ExecContext, h: HostSpec, s: ReachableHost, primaryName: string): Promise<string> {
  const { spec: ph, state: ps } = hostOf(ctx, primaryName);
  const lsn = (await runSql(sqlTarget(ph, ps), "SELECT pg_current_wal_lsn()")).trim();
  const deadline = Date.now() + ctx.streamTimeoutMs;
  for (let pause = 10; ; pause = Math.min(100, pause * 2)) {
    if ((await runSql(sqlTarget(h, s), `SELECT pg_last_wal_replay_lsn() >= ${sqlLiteral(lsn)}::pg_lsn`).catch(() => "")).trim() === "t") return `has replayed ${primaryName}'s WAL up to ${lsn}`;
    if (Date.now() > deadline) throw await withServerLog(s, new PgrepError(`${h.name}: has not replayed ${primaryName}'s WAL up to ${lsn} after ${Math.round(ctx.streamTimeoutMs / 1000)} s`));
    await new Promise((r) => setTimeout(r, pause));
  }
}

// synchronous_commit local: pgrep's own change must not wait for standbys that do not stream yet.
const QUIET_SESSION = "SET log_statement = 'none'; SET log_min_duration_statement = -1; SET synchronous_commit = local;";

async function waitStreaming(ctx: ExecContext, h: HostSpec, s: ReachableHost, upstreamName: string): Promise<string> {
  const { spec: uh, state: us } = hostOf(ctx, upstreamName);
  const deadline = Date.now() + ctx.streamTimeoutMs;
  const window = () => Math.max(10, Math.min(2_000, deadline - Date.now()));
  // Both sides are watched at once, each in one session that looks every 10–20 ms for up to 2 s: a psql
  // for every look cost each host ~30 ms of CPU, and a standby usually streams within milliseconds of
  // its start or reload.
  const standbySide = () => runSql(sqlTarget(h, s), receiverStreamingSql(window())).catch((e: Error) => `error: ${e.message}`);
  let mine = standbySide();
  let last = "";
  for (;;) {
    const seen = await runSql(sqlTarget(uh, us), streamingSeenSql(h.name, window())).catch((e: Error) => `error: ${e.message}`);
    const [onUpstream = "", timeline = ""] = seen.trim().split("\n").at(-1)!.trim().split(" ");
    const [receiver = "", recovery = ""] = (await mine).trim().split("\n").slice(-2).map((x) => x.trim());
    if (onUpstream === "streaming" && recovery === "t") {
      // The upstream's view alone can be fooled: a standby that cannot follow its timeline (it went past
      // where it began) streams the old timeline's tail for a moment on every retry. Its own receiver must
      // stream the upstream's timeline, seen twice.
      if (receiver === `streaming ${timeline}`) return `streaming from ${upstreamName} on timeline ${timeline}, read-only`;
      const again = (await runSql(sqlTarget(h, s), receiverOnTimelineSql(Number(timeline))).catch((e: Error) => `error: ${e.message}`)).trim().split("\n").at(-1)!.trim();
      if (again === `streaming ${timeline}`) return `streaming from ${upstreamName} on timeline ${timeline}, read-only`;
      last = `${upstreamName} sees it streaming, but its WAL receiver says '${again}' (${upstreamName} is on timeline ${timeline})`;
    } else last = `${upstreamName} sees it as '${onUpstream}', in recovery: '${recovery || receiver}'`;
    if (Date.now() > deadline) {
      throw await withServerLog(s, new PgrepError(`${h.name}: not streaming after ${Math.round(ctx.streamTimeoutMs / 1000)}s (${last})`));
    }
    // An answer that came at once (an error, or streaming while the standby's side is not yet right) is
    // asked again after a pause, not in a tight loop.
    if (onUpstream === "streaming" || onUpstream.startsWith("error")) await new Promise((r) => setTimeout(r, 100));
    mine = standbySide();
  }
}

/**
 * On the standby, for up to `ms`: until its WAL receiver streams, on the same timeline on two looks in a
 * row (or it is not in recovery); then its receiver's status and timeline, and whether it is in recovery.
 */
export function receiverStreamingSql(ms: number): string {
  const now = "(SELECT status || ' ' || received_tli FROM pg_stat_wal_receiver)";
  return `DO $pgrep$ DECLARE was text; cur text; BEGIN FOR i IN 1..${Math.ceil(ms / 20)} LOOP EXIT WHEN NOT pg_is_in_recovery(); cur := ${now}; EXIT WHEN cur LIKE 'streaming %' AND cur = was; was := cur; PERFORM pg_sleep(0.02); END LOOP; END $pgrep$;
SELECT coalesce(${now}, 'no WAL receiver');
SELECT pg_is_in_recovery();`;
}

/** On the standby, up to ~0.5 s: its WAL receiver streams `timeline`, seen on two looks in a row; then how it is. */
export function receiverOnTimelineSql(timeline: number): string {
  const ok = `EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming' AND received_tli = ${Number.isInteger(timeline) ? timeline : 0})`;
  return `DO $pgrep$ DECLARE seen int := 0; BEGIN FOR i IN 1..25 LOOP IF ${ok} THEN seen := seen + 1; ELSE seen := 0; END IF; EXIT WHEN seen >= 2; PERFORM pg_sleep(0.02); END LOOP; END $pgrep$;
SELECT coalesce((SELECT status || ' ' || received_tli FROM pg_stat_wal_receiver), 'no WAL receiver');`;
}

/**
 * Waits on the upstream, for up to `ms`, until it sees `name` streaming; then says how it sees it. The
 * activity snapshot is cleared on every look: inside one transaction it would otherwise stay as first read.
 */
export function streamingSeenSql(name: string, ms: number): string {
  const seen = `SELECT state FROM pg_stat_replication WHERE application_name = ${sqlLiteral(name)} ORDER BY state = 'streaming' DESC LIMIT 1`;
  return `DO $pgrep$ BEGIN FOR i IN 1..${Math.ceil(ms / 10)} LOOP PERFORM pg_stat_clear_snapshot(); EXIT WHEN (${seen}) = 'streaming'; PERFORM pg_sleep(0.01); END LOOP; END $pgrep$;
SELECT coalesce((${seen}), 'absent') || ' ' || ${TIMELINE_SQL};`;
}
