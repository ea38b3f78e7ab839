import { assessCluster } from "../cluster/assess.js";
import { observeAndFence } from "../apply/fence.js";
import { EXIT, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { effectiveMethod } from "../postgres/promote.js";
import { hostNamed, reachable } from "../session/hosts.js";
import { finishRoleChange, printRoleDryRun } from "./role-change.js";
import { executeRoleSteps, replayLag } from "../apply/role-steps.js";
import { followerSlots, recordNewPrimary, type RoleStep } from "../plan/role-steps.js";
import { openSession, requireAllReachable, type Session } from "../session/session.js";
import type { ClusterSnapshot } from "../cluster/state.js";

export interface SwitchoverCommandOptions {
  inventory: string;
  /** Seconds to wait for another command's cluster lock. */
  waitLock: number;
  target: string;
  maxLagBytes: number;
  dryRun: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
  /** How long the promotion may take before it is withdrawn (default 60). */
  promoteTimeoutSeconds?: number;
}

/**
 * Planned, lossless role swap: the primary stops cleanly, the target replays its shutdown checkpoint, is
 * promoted, and the old primary follows it (no rewind is needed after a clean shutdown). If promotion
 * fails, the old primary is started again, so there is always exactly one writable primary.
 */
export async function switchoverCommand(opts: SwitchoverCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession({ ...opts, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } }, (spec) => hostNamed(spec, opts.target));
  try {
    if (hostNamed(session.spec, opts.target).role === "primary") {
      out.progress(`${opts.target} already is the primary; nothing to do.`);
      return EXIT.ok;
    }
    return await switchOver(session, await observeAndFence(session, out, opts.dryRun), opts, out);
  } finally {
    await session.close();
  }
}

/** The switchover itself, on an open session that holds the lock (also the last step of a rolling restart). */
export async function switchOver(session: Session, snap: ClusterSnapshot, opts: Pick<SwitchoverCommandOptions, "target" | "maxLagBytes" | "dryRun" | "streamTimeoutSeconds" | "promoteTimeoutSeconds">, out: Output): Promise<ExitCode> {
  const { spec } = session;
  const th = hostNamed(spec, opts.target);
  const old = spec.primary;
  requireAllReachable(snap);
  const T = reachable(snap, th.name);
  const O = reachable(snap, old.name);
  const state = assessCluster(spec, snap);
  const bad = state.filter((r) => !r.ok);
  if (bad.length) throw new RefusedError(`the cluster is not healthy: ${bad.map((r) => `${r.name} ${r.state}`).join(", ")}`, "a switchover starts from a healthy cluster; run pgrep status");
  const lag = await replayLag(th, T, O.sql!.lsn ?? undefined);
  if (lag > opts.maxLagBytes) throw new RefusedError(`${th.name} is ${lag} bytes behind ${old.name} (limit ${opts.maxLagBytes})`, "wait until it catches up, or raise --max-lag-bytes");
  const record = recordNewPrimary(spec, th.name);
  const steps: RoleStep[] = [
    { kind: "stop", host: old.name, waitOn: th.name, why: "writes pause from here; nothing the primary acknowledged may be lost" },
    { kind: "promote", host: th.name, method: effectiveMethod(spec.promoteMethod, T.caps), slots: followerSlots(spec, snap, record, true), restartOnFailure: old.name, why: `it has everything ${old.name} wrote` },
    record,
    // No rewind is needed after a clean shutdown: the old primary simply follows.
    { kind: "converge", skip: [], markStandby: old.name, why: `${old.name} and the other standbys stream from ${th.name}` },
  ];
  if (opts.dryRun) return await printRoleDryRun(out, `Switch over from ${old.name} to ${th.name} in cluster ${spec.name}`, session, snap, steps);
  const pauseStarted = Date.now();
  const spec2 = await executeRoleSteps(
    {
      session,
      snap,
      out,
      streamTimeoutMs: opts.streamTimeoutSeconds * 1000,
      promoteTimeoutMs: (opts.promoteTimeoutSeconds ?? 60) * 1000,
      onPromoted: () => out.progress(`[${th.name}] ✓ is the primary; writes resume (paused ${((Date.now() - pauseStarted) / 1000).toFixed(1)} s)`),
    },
    steps,
  );
  return await finishRoleChange(session, spec2, out, th.name);
}
