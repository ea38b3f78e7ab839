import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import { EXIT, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { effectiveMethod } from "../postgres/promote.js";
import { cleanlyShutDown, lsnValue, readControl } from "../postgres/control.js";
import { hostNamed, reachable } from "../session/hosts.js";
import { finishRoleChange, printRoleDryRun } from "./role-change.js";
import { executeRoleSteps, replayLag } from "../apply/role-steps.js";
import { followerSlots, recordNewPrimary, type RoleStep } from "../plan/role-steps.js";
import { openSession } from "../session/session.js";

export interface PromoteCommandOptions {
  inventory: string;
  /** Seconds to wait for another command's cluster lock. */
  waitLock: number;
  target: string;
  fence: boolean;
  force: boolean;
  oldPrimaryIsDown: boolean;
  maxLagBytes: number;
  dryRun: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/** Makes a standby the primary without ever leaving two writable primaries unless told to. */
export async function promoteCommand(opts: PromoteCommandOptions, out: Output): Promise<ExitCode> {
  // The target and the old primary are read first, alone; the other standbys once it is promoted (they
  // are only needed after it), while the target looks up the hosts' names: its pg_hba.conf needs them
  // after the promotion, and the other hosts can then follow it without a second look at every host.
  const session = await openSession(
    { ...opts, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock }, resolveOn: [opts.target], actsFirstOn: [opts.target] },
    (spec) => hostNamed(spec, opts.target),
  );
  try {
    const { spec } = session;
    const th = hostNamed(spec, opts.target);
    const { first: snap, all } = await session.observeStaged();
    const T = reachable(snap, th.name);
    if (th.role === "primary") {
      if (T.sql && !T.sql.inRecovery) {
        out.progress(`${th.name} already is the primary; nothing to do.`);
        return EXIT.ok;
      }
      throw new RefusedError(`${th.name} is the inventory's primary but is ${T.running ? "in recovery" : "not running"}`, "run pgrep status to see the cluster");
    }
    if (!T.sql) throw new RefusedError(`${th.name}: PostgreSQL is not running, so it cannot be promoted`, "start it, or promote another standby");
    const O = snap.hosts.get(spec.primary.name)!;
    // Running but not answering queries counts as writable: nothing proves otherwise.
    const oldWritable = O.reachable && O.running && !O.sql?.inRecovery;
    const lag = T.sql.inRecovery && oldWritable ? await replayLag(th, T, O.sql?.lsn ?? undefined) : 0;
    if (oldWritable) out.progress(`[${th.name}] is ${lag} bytes behind ${spec.primary.name}`);
    // The standbys not read yet count as answering when their SSH connection did.
    const answers = (name: string) => snap.hosts.get(name)?.reachable ?? session.conns.connected(name);
    const steps = planPromote(spec, snap, th, lag, opts, O.reachable && !O.running && (await stoppedCleanlyAndReplayed(O, T)), answers);
    if (opts.dryRun) return await printRoleDryRun(out, `Promote ${th.name} in cluster ${spec.name}`, session, await all(), steps);
    if (opts.force && oldWritable) out.progress(`[${spec.primary.name}] WARNING: still running and writable (--force): there will be two primaries`);
    const spec2 = await executeRoleSteps({ session, snap, all, out, streamTimeoutMs: opts.streamTimeoutSeconds * 1000 }, steps);
    const converge = steps.find((x) => x.kind === "converge");
    // The old primary, when it was declared down or left for rejoin, is not expected in line yet.
    const code = await finishRoleChange(session, spec2, out, th.name, converge?.kind === "converge" ? converge.skip : []);
    out.progress(`${th.name} is the primary.`);
    return code;
  } finally {
    await session.close();
  }
}

/**
 * A stopped old primary can simply follow the new one when it was shut down cleanly and the target has
 * replayed its shutdown checkpoint: it holds nothing the target lacks. Otherwise it may (a crash).
 */
async function stoppedCleanlyAndReplayed(O: ReachableHost, T: ReachableHost): Promise<boolean> {
  const c = await readControl(O.transport, O.layout.dataDir, O.layout.admin);
  if (!c || !cleanlyShutDown(c) || !T.sql?.lsn) return false;
  return lsnValue(T.sql.lsn) > lsnValue(c.checkpointLsn);
}

/**
 * The promotion's steps, or a refusal. The split-brain guard lives here: a reachable primary that accepts
 * writes must be fenced first; an unreachable one must be declared down or fenced by the inventory's command.
 */
export function planPromote(
  spec: ClusterSpec,
  snap: ClusterSnapshot,
  th: HostSpec,
  lagBytes: number,
  opts: PromoteCommandOptions,
  oldStoppedCleanly = false,
  answers: (host: string) => boolean = (n) => !!snap.hosts.get(n)?.reachable,
): RoleStep[] {
  const T = snap.hosts.get(th.name) as ReachableHost;
  const old = spec.primary;
  const O = snap.hosts.get(old.name)!;
  const steps: RoleStep[] = [];
  if (T.sql?.inRecovery) {
    if (O.reachable && O.running && !O.sql?.inRecovery) {
      if (lagBytes > opts.maxLagBytes && !opts.force)
        throw new RefusedError(`${th.name} is ${lagBytes} bytes behind ${old.name} (limit ${opts.maxLagBytes})`, "wait until it catches up (pgrep status), raise --max-lag-bytes, or --force");
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
    const why = O.reachable ? (O.running ? (O.sql?.inRecovery ? `${old.name} is in recovery` : opts.fence ? `${old.name} is stopped` : "--force") : `${old.name} is stopped`) : opts.oldPrimaryIsDown ? "--old-primary-is-down" : "the old primary is fenced";
    steps.push({ kind: "promote", host: th.name, method: effectiveMethod(spec.promoteMethod, T.caps), slots: [], why });
  }
  const record = recordNewPrimary(spec, th.name);
  steps.push(record);
  // Fenced by pgrep (a clean stop whose last record the target replayed) or found stopped cleanly, the
  // old primary follows the new one at once, like after a switchover. Otherwise (a crash, or declared
  // down) it may hold writes the target never had: when reachable it is marked as a standby that waits
  // for `pgrep rejoin`, so that starting it can never make a second primary and setup leaves it alone.
  const fenced = steps.some((s) => s.kind === "stop");
  const follows = O.reachable && (fenced || (!O.running && oldStoppedCleanly));
  const stopped = O.reachable && (!O.running || fenced);
  for (const p of steps) if (p.kind === "promote") p.slots = followerSlots(spec, snap, record, follows, answers);
  steps.push({
    kind: "converge",
    skip: follows ? [] : [old.name],
    ...(stopped ? { markStandby: old.name, rejoinLater: !follows } : {}),
    why: follows ? `${old.name} and the other standbys stream from ${th.name}` : `the other standbys stream from ${th.name}`,
  });
  return steps;
}
