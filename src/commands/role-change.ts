import type { ClusterSpec, HostSpec } from "../cluster/model.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import { EXIT, InputError, PgrepError, UnreachableError } from "../errors.js";
import { loadCluster } from "../inventory/index.js";
import { recordTopology, type RoleChange } from "../inventory/update.js";
import type { Output } from "../output.js";
import { lineReporter } from "../output.js";
import { sqlTarget, type ExecContext } from "../plan/context.js";
import { executePlan } from "../plan/execute.js";
import { planMarkStandby, planSetup } from "../plan/setup.js";
import { stepCount } from "../plan/steps.js";
import { readControl } from "../postgres/control.js";
import { runSql } from "../postgres/sql.js";
import type { Session } from "./session.js";

// Shared by promote, rejoin and switchover.

export function hostNamed(spec: ClusterSpec, name: string): HostSpec {
  const h = spec.hosts.find((x) => x.name === name);
  if (!h) throw new InputError(`no host named '${name}' in ${spec.inventoryFile}`, `hosts: ${spec.hosts.map((x) => x.name).join(", ")}`);
  return h;
}

export function reachable(snap: ClusterSnapshot, name: string): ReachableHost {
  const s = snap.hosts.get(name);
  if (!s) throw new Error(`${name} was not observed`);
  if (!s.reachable) throw s.error instanceof PgrepError ? s.error : new UnreachableError(name, s.error.message);
  return s;
}

export function execContext(session: Session, spec: ClusterSpec, snap: ClusterSnapshot, out: Output, streamTimeoutMs: number): ExecContext {
  return { spec, snap, password: session.password!, report: lineReporter(out), streamTimeoutMs };
}

/** Bytes of WAL the standby has not replayed: against the primary's position when known, else what it received. */
export async function replayLag(h: HostSpec, s: ReachableHost, primaryLsn: string | undefined): Promise<number> {
  const q = primaryLsn
    ? `SELECT pg_wal_lsn_diff('${primaryLsn}', pg_last_wal_replay_lsn())`
    : "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())";
  return Math.max(0, Number((await runSql(sqlTarget(h, s), q)).trim() || 0));
}

/** Waits until the standby has replayed past `lsn` (e.g. the old primary's shutdown checkpoint). */
export async function waitReplayedPast(h: HostSpec, s: ReachableHost, lsn: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = (await runSql(sqlTarget(h, s), `SELECT pg_last_wal_replay_lsn() > '${lsn}'::pg_lsn`)).trim();
    if (r === "t") return;
    if (Date.now() > deadline) throw new PgrepError(`${h.name}: has not replayed past ${lsn} after ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** The last checkpoint of a stopped server: after a clean shutdown, the last record its standbys need. */
export async function shutdownCheckpoint(s: ReachableHost): Promise<string> {
  const c = await readControl(s.transport, s.layout.dataDir, s.layout.admin);
  if (!c) throw new PgrepError(`${s.name}: cannot read global/pg_control`);
  return c.checkpointLsn;
}

/**
 * Writes the new roles into the inventory, then brings every other host in line with it through the
 * ordinary setup plan (re-pointed standbys, the new primary's settings), leaving `skip` alone.
 */
export async function recordAndConverge(
  session: Session,
  changes: RoleChange[],
  out: Output,
  opts: { skip: Set<string>; markStandby?: string; force?: Set<string>; streamTimeoutMs: number },
): Promise<ClusterSpec> {
  const spec0 = session.spec;
  if (changes.length) await recordTopology(spec0.inventoryFile, changes);
  if (changes.length) out.progress(`Recorded in ${spec0.inventoryFile}: ${changes.map((c) => `${c.host} is ${c.role === "primary" ? "the primary" : `a standby of ${c.upstream ?? "the primary"}`}`).join("; ")}.`);
  const newPrimary = changes.find((c) => c.role === "primary")?.host;
  try {
    return await converge(session, spec0.inventoryFile, out, opts);
  } catch (e) {
    if (!newPrimary) throw e;
    // The promotion itself happened and is recorded: say so plainly, and what is left to do.
    throw new PgrepError(`${newPrimary} is the primary (recorded in ${spec0.inventoryFile}), but bringing the other hosts in line failed: ${(e as Error).message}`, {
      exitCode: e instanceof PgrepError ? e.exitCode : EXIT.failed,
      hint: "fix that host, then run pgrep setup with the same inventory to finish",
      cause: e,
    });
  }
}

async function converge(
  session: Session,
  inventoryFile: string,
  out: Output,
  opts: { skip: Set<string>; markStandby?: string; force?: Set<string>; streamTimeoutMs: number },
): Promise<ClusterSpec> {
  const spec = await loadCluster(inventoryFile);
  let snap = await observeWith(session, spec);
  if (opts.markStandby && snap.hosts.get(opts.markStandby)?.reachable) {
    const steps = planMarkStandby(spec, snap, opts.markStandby);
    const phases = [{ title: "former primary", lanes: [{ host: opts.markStandby, steps }] }];
    await executePlan({ command: "mark", cluster: spec.name, phases }, execContext(session, spec, snap, out, opts.streamTimeoutMs));
    snap = await observeWith(session, spec);
  }
  const plan = planSetup(spec, snap, { force: opts.force ?? new Set(), skip: opts.skip });
  if (stepCount(plan)) await executePlan(plan, execContext(session, spec, snap, out, opts.streamTimeoutMs));
  return spec;
}

/** Observes with another spec (after the inventory changed) over the session's open connections. */
export async function observeWith(session: Session, spec: ClusterSpec): Promise<ClusterSnapshot> {
  const { observeCluster } = await import("../cluster/observe.js");
  return observeCluster(spec, session.conns, session.password);
}
