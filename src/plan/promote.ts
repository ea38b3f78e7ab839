import { lsnDiff } from "../cluster/positions.js";
import type { ClusterSnapshot, Position, ReachableHost } from "../cluster/state.js";
import { RefusedError } from "../errors.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import { effectiveMethod } from "../postgres/promote.js";
import type { WalEnd } from "../postgres/wal.js";
import { followerSlots, recordNewPrimary, type RoleStep } from "./role-steps.js";

// A promotion as data (promote and failover share it): the split-brain guard, the salvage of what a stopped
// old primary wrote that the target lacks, the promotion, the record and the converge. Pure.

export interface PromoteOptions {
  fence: boolean;
  force: boolean;
  oldPrimaryIsDown: boolean;
  maxLagBytes: number;
}

export interface PromoteFacts {
  /** Bytes the target has not replayed of the running old primary's WAL (0 when it is not running). */
  lagBytes: number;
  /** The old primary is stopped and holds nothing the target lacks, or will not once `salvage` is done. */
  oldHoldsNothingMore: boolean;
  /** The stopped old primary's WAL past the target's, to copy to it first. */
  salvage: Extract<RoleStep, { kind: "salvage" }> | undefined;
  /** Standbys that hold WAL past the target's (promoted with --force): they cannot follow and are left for rejoin. */
  leftBehind: string[];
  answers: (host: string) => boolean;
}

/**
 * The salvage a stopped old primary allows: its WAL past what the target has, when both are on the same
 * timeline and the old primary's end of WAL is known.
 */
export function planSalvage(old: string, target: Position, walEnd: WalEnd | undefined): Extract<RoleStep, { kind: "salvage" }> | undefined {
  if (!walEnd || "unknown" in walEnd || target.received === null || walEnd.timeline !== target.timeline) return undefined;
  const bytes = lsnDiff(walEnd.end, target.received);
  if (bytes <= 0) return undefined;
  return {
    kind: "salvage",
    host: target.name,
    from: old,
    have: target.received,
    end: walEnd.end,
    timeline: walEnd.timeline,
    segmentSize: walEnd.segmentSize,
    bytes,
    why: `${old}'s server is stopped but its host answers: what it wrote after the last byte ${target.name} received (commits its clients were told succeeded) is still in its pg_wal`,
  };
}

/**
 * The stopped old primary's WAL ends where the target's does (or will, salvaged), and nothing of a record it
 * had begun follows: it can simply follow. (One with a torn record there must be rewound: replaying it as a
 * standby stops at the fork with a PANIC.)
 */
export function holdsNothingMore(target: Position, walEnd: WalEnd | undefined, salvage: RoleStep | undefined): boolean | undefined {
  if (!walEnd || "unknown" in walEnd || target.received === null) return undefined;
  if (walEnd.timeline !== target.timeline || walEnd.clean !== true) return false;
  return salvage !== undefined || lsnDiff(walEnd.end, target.received) <= 0;
}

/**
 * The promotion's steps, or a refusal. The split-brain guard lives here: a reachable primary that accepts
 * writes must be fenced first; an unreachable one must be declared down or fenced by the inventory's command.
 */
export function planPromote(spec: ClusterSpec, snap: ClusterSnapshot, th: HostSpec, opts: PromoteOptions, facts: PromoteFacts): RoleStep[] {
  const T = snap.hosts.get(th.name) as ReachableHost;
  const old = spec.primary;
  const O = snap.hosts.get(old.name)!;
  const steps: RoleStep[] = [];
  const fencing = O.reachable && O.running && !O.sql?.inRecovery && opts.fence;
  if (T.sql?.inRecovery) {
    if (O.reachable && O.running && !O.sql?.inRecovery) {
      if (facts.lagBytes > opts.maxLagBytes && !opts.force)
        throw new RefusedError(`${th.name} is ${facts.lagBytes} bytes behind ${old.name} (limit ${opts.maxLagBytes})`, "wait until it catches up (pgrep status), raise --max-lag-bytes, or --force");
      if (opts.fence) steps.push({ kind: "stop", host: old.name, waitOn: th.name, why: "--fence: the old primary must not accept writes, and everything it acknowledged must reach the new one" });
      else if (!opts.force)
        throw new RefusedError(
          `${old.name} is running and accepts writes; promoting ${th.name} now would make two primaries`,
          `--fence stops ${old.name} first (pgrep switchover ${th.name} is the planned way to swap roles); --force accepts two primaries`,
        );
    } else if (!O.reachable) {
      if (spec.fenceCommand && !opts.oldPrimaryIsDown) steps.push({ kind: "fence-command", host: old.name, why: `${old.name} is unreachable, which does not prove it is down` });
      else if (!opts.oldPrimaryIsDown && !opts.force)
        throw new RefusedError(
          `${old.name} cannot be reached (${O.error.message.replace(`${old.name}: `, "")}), which does not prove it is down`,
          `make sure ${old.name} is down or cut off from its clients, then pass --old-primary-is-down (or configure promote.fence_command)`,
        );
    }
    if (facts.salvage) steps.push(facts.salvage);
    const why = O.reachable ? (O.running ? (O.sql?.inRecovery ? `${old.name} is in recovery` : opts.fence ? `${old.name} is stopped` : "--force") : `${old.name} is stopped`) : opts.oldPrimaryIsDown ? "--old-primary-is-down" : "the old primary is fenced";
    // Withdrawn on failure; a fenced old primary then runs again, so that there is always one primary.
    steps.push({ kind: "promote", host: th.name, method: effectiveMethod(spec.promoteMethod, T.caps), slots: [], why, ...(fencing ? { restartOnFailure: old.name } : {}) });
  }
  const record = recordNewPrimary(spec, th.name);
  steps.push(record);
  // Fenced by pgrep (a clean stop whose last record the target replayed), or stopped holding nothing the
  // target lacks (its WAL ends where the target's does, salvaged or not), the old primary follows the new
  // one at once. Otherwise (a crash whose WAL cannot be read, or declared down) it may hold writes the target
  // never had: when reachable it is marked as a standby that waits for `pgrep rejoin`, so that starting it
  // can never make a second primary and setup leaves it alone.
  const follows = O.reachable && (fencing || (!O.running && facts.oldHoldsNothingMore));
  const stopped = O.reachable && (!O.running || fencing);
  const skip = [...(follows ? [] : [old.name]), ...facts.leftBehind];
  for (const p of steps) if (p.kind === "promote") p.slots = followerSlots(spec, snap, record, follows, (n) => facts.answers(n) && !facts.leftBehind.includes(n));
  steps.push({
    kind: "converge",
    skip,
    ...(stopped ? { markStandby: old.name, rejoinLater: !follows } : {}),
    why: follows ? `${old.name} and the other standbys stream from ${th.name}` : `the other standbys stream from ${th.name}`,
  });
  return steps;
}
