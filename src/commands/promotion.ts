import { lsnValue } from "../postgres/control.js";
import { positionRead } from "../cluster/positions.js";
import type { ClusterSnapshot, PositionRead, ReachableHost } from "../cluster/state.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import { EXIT, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { cleanlyShutDown, readControl } from "../postgres/control.js";
import { readWalEnd, type WalEnd } from "../postgres/wal.js";
import { bytes } from "../cluster/format.js";
import { chooseStandby, formatChoice, standbysAhead, type OldPrimaryView, type StandbyView } from "../plan/choose.js";
import { holdsNothingMore, planPromote, planSalvage, type PromoteOptions } from "../plan/promote.js";
import { executeRoleSteps, replayLag } from "../apply/role-steps.js";
import { fenceSplitBrain } from "../apply/fence.js";
import { hostNamed, reachable } from "../session/hosts.js";
import { openSession, type Session } from "../session/session.js";
import { finishRoleChange, printRoleDryRun } from "./role-change.js";

// What promote and failover share: observe, choose (failover) or check (promote) the target against the
// other standbys, plan, execute, converge.

export interface PromotionOptions extends PromoteOptions {
  inventory: string;
  /** Seconds to wait for another command's cluster lock. */
  waitLock: number;
  dryRun: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
  promoteTimeoutSeconds: number;
}

/** Promotes `target`, or (undefined: failover) the standby that holds the most WAL. */
export async function runPromotion(opts: PromotionOptions, out: Output, target: string | undefined): Promise<ExitCode> {
  // A named target and the old primary are read first, alone, with a light read of the other standbys'
  // positions beside them; the others in full once it is promoted, while it looks up the hosts' names
  // for its pg_hba.conf. A failover reads every host first: it chooses among them.
  const session = await openSession(
    { ...opts, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock }, resolveOn: target ? [target] : "standbys", ...(target ? { actsFirstOn: [target] } : {}) },
    (spec) => void (target && hostNamed(spec, target)),
  );
  try {
    const { spec } = session;
    let { snap, reads, all } = await firstLook(session, target);
    if (target && hostNamed(spec, target).role === "primary") {
      const T = reachable(snap, target);
      if (T.sql && !T.sql.inRecovery) {
        out.progress(`${target} already is the primary; nothing to do.`);
        return EXIT.ok;
      }
      throw new RefusedError(`${target} is the inventory's primary but is ${T.running ? "in recovery" : "not running"}`, "run pgrep status to see the cluster");
    }
    // A standby that accepts writes beside the inventory's primary (one declared down that thawed) is fenced first.
    if (reads.some((r) => r.position && !r.position.inRecovery && r.name !== target)) {
      const whole = await (all?.() ?? Promise.resolve(snap));
      const fenced = await fenceSplitBrain(session, whole, out, opts.dryRun);
      if (fenced.names.length) ({ snap, reads, all } = { snap: fenced.snap, reads: readsOf(spec, fenced.snap), all: all && (() => Promise.resolve(fenced.snap)) });
    }
    const O = snap.hosts.get(spec.primary.name)!;
    const oldWritable = O.reachable && O.running && !O.sql?.inRecovery;
    const views = viewsOf(spec, reads);
    const walEnd = O.reachable && !O.running && O.pgVersion !== undefined ? await oldPrimaryWalEnd(spec.primary, O, views) : undefined;
    const oldView: OldPrimaryView = { name: O.name, state: oldWritable ? "writable" : O.reachable && !O.running ? "stopped" : "unreachable", ...(walEnd ? { walEnd } : {}) };
    const choice = chooseStandby(spec, views, oldView, { fenced: oldWritable && opts.fence, tieBytes: opts.maxLagBytes });
    let th: HostSpec;
    if (target) th = hostNamed(spec, target);
    else {
      (opts.dryRun ? out.result : out.progress)(["Candidates:", ...formatChoice(choice), ""].join("\n"));
      if (!choice.chosen) throw new RefusedError(`no standby can be promoted: ${choice.refusal}`, "pgrep status shows each host; pgrep promote HOST (with --force) promotes one you name");
      th = hostNamed(spec, choice.chosen);
    }
    const T = reachable(snap, th.name);
    if (!T.sql) throw new RefusedError(`${th.name}: PostgreSQL is not running, so it cannot be promoted`, "start it, or promote another standby");
    const lag = T.sql.inRecovery && oldWritable ? await replayLag(th, T, O.reachable ? (O.sql?.lsn ?? undefined) : undefined) : 0;
    if (oldWritable) out.progress(`[${th.name}] is ${lag} bytes behind ${spec.primary.name}`);
    // A fenced primary gives every standby streaming from it all it wrote: nobody is ahead then.
    const ahead = T.sql.inRecovery && !(oldWritable && opts.fence) ? standbysAhead(T.sql.position, views) : [];
    if (ahead.length && !opts.force)
      throw new RefusedError(
        `${aheadText(ahead)} than ${th.name}; promoting ${th.name} would lose it, and ${ahead.length > 1 ? "they" : "it"} could not follow`,
        `pgrep failover -i ${opts.inventory}${opts.oldPrimaryIsDown ? " --old-primary-is-down" : ""} promotes the standby that holds the most; --force promotes ${th.name} anyway (then pgrep rejoin ${ahead.map((a) => a.host).join(", ")})`,
      );
    if (ahead.length) out.progress(`WARNING (--force): ${aheadText(ahead)} than ${th.name}; ${ahead.map((a) => a.host).join(" and ")} will need pgrep rejoin, which discards it`);
    const salvage = T.sql.inRecovery ? planSalvage(O.name, T.sql.position, walEnd) : undefined;
    const nothingMore = O.reachable && !O.running ? (holdsNothingMore(T.sql.position, walEnd, salvage) ?? (await stoppedCleanlyAndReplayed(O, T))) : false;
    if (walEnd && "unknown" in walEnd) out.progress(`[${O.name}] its server is stopped, but its end of WAL cannot be read (${walEnd.unknown}): what it wrote that ${th.name} lacks cannot be salvaged`);
    else if (walEnd && walEnd.clean === false && !nothingMore) out.progress(`[${O.name}] its WAL ends in a record it had begun and not finished (torn by the crash): it cannot simply follow, and waits for pgrep rejoin (pg_rewind)`);
    // The standbys not read in full yet count as answering when their SSH connection did.
    const answers = (name: string) => snap.hosts.get(name)?.reachable ?? session.conns.connected(name);
    const steps = planPromote(spec, snap, th, opts, { lagBytes: lag, oldHoldsNothingMore: nothingMore, salvage, leftBehind: ahead.map((a) => a.host), answers });
    const title = target ? `Promote ${th.name} in cluster ${spec.name}` : `Fail over to ${th.name} in cluster ${spec.name}`;
    if (opts.dryRun) return await printRoleDryRun(out, title, session, await (all?.() ?? Promise.resolve(snap)), steps);
    if (opts.force && oldWritable && !opts.fence) out.progress(`[${spec.primary.name}] WARNING: still running and writable (--force): there will be two primaries`);
    const spec2 = await executeRoleSteps({ session, snap, ...(all ? { all } : {}), out, streamTimeoutMs: opts.streamTimeoutSeconds * 1000, promoteTimeoutMs: opts.promoteTimeoutSeconds * 1000 }, steps);
    const converge = steps.find((x) => x.kind === "converge");
    // The old primary, when it was declared down or left for rejoin, is not expected in line yet; standbys
    // left behind by --force are (exit 5 names them).
    const expected = converge?.kind === "converge" ? converge.skip.filter((n) => !ahead.some((a) => a.host === n)) : [];
    const code = await finishRoleChange(session, spec2, out, th.name, expected);
    out.progress(`${th.name} is the primary.`);
    return code;
  } finally {
    await session.close();
  }
}

interface FirstLook {
  snap: ClusterSnapshot;
  /** Every standby's position (read in full, or lightly). */
  reads: PositionRead[];
  all: (() => Promise<ClusterSnapshot>) | undefined;
}

async function firstLook(session: Session, target: string | undefined): Promise<FirstLook> {
  if (!target) {
    const snap = await session.observe(session.spec.standbys.map((h) => h.name));
    return { snap, reads: readsOf(session.spec, snap), all: undefined };
  }
  const staged = await session.observeStaged();
  return { snap: staged.first, reads: [...readsOf(session.spec, staged.first), ...staged.positions], all: staged.all };
}

/** The positions of the standbys a snapshot holds in full. */
function readsOf(spec: ClusterSpec, snap: ClusterSnapshot): PositionRead[] {
  return spec.standbys.flatMap((h) => {
    const s = snap.hosts.get(h.name);
    return s ? [positionRead(s)] : [];
  });
}

function viewsOf(spec: ClusterSpec, reads: PositionRead[]): StandbyView[] {
  return spec.standbys.flatMap((host): StandbyView[] => {
    const r = reads.find((x) => x.name === host.name);
    if (!r) return [];
    return r.position ? [{ host, position: r.position, needsRejoin: r.needsRejoin }] : [{ host, position: undefined, why: r.why }];
  });
}

function aheadText(ahead: { host: string; bytes: number }[]): string {
  return ahead.map((a) => `${a.host} has received ${Number.isNaN(a.bytes) ? "WAL of a newer timeline" : `${bytes(a.bytes)} (${a.bytes} bytes) more WAL`}`).join(", and ");
}

/**
 * The end of a stopped old primary's WAL, read from its pg_wal: from the furthest replay position of a
 * standby (a record boundary in its WAL), else from its last checkpoint.
 */
async function oldPrimaryWalEnd(h: HostSpec, O: ReachableHost, views: StandbyView[]): Promise<WalEnd> {
  const opts = { dataDir: O.layout.dataDir, binDir: O.layout.binDir, osUser: h.pg.osUser };
  const replayed = views.flatMap((v) => (v.position?.replayed ? [v.position] : [])).sort((a, b) => b.timeline - a.timeline || Number(lsnValue(b.replayed!) - lsnValue(a.replayed!)))[0];
  const fromControl = async (): Promise<WalEnd> => {
    const c = await readControl(O.transport, O.layout.dataDir, O.layout.admin);
    return c ? readWalEnd(O.transport, opts, c.checkpointLsn) : { unknown: "cannot read global/pg_control" };
  };
  if (!replayed) return fromControl();
  const end = await readWalEnd(O.transport, opts, replayed.replayed!);
  // Its segment gone, another timeline, or nothing after it (then whether a torn record follows is not known).
  if (("unknown" in end && end.segmentMissing) || (!("unknown" in end) && (end.timeline !== replayed.timeline || end.clean === undefined))) return fromControl();
  return end;
}

/**
 * Without its end of WAL: a stopped old primary can simply follow the new one when it was shut down cleanly
 * and the target has replayed its shutdown checkpoint.
 */
async function stoppedCleanlyAndReplayed(O: ReachableHost, T: ReachableHost): Promise<boolean> {
  const c = await readControl(O.transport, O.layout.dataDir, O.layout.admin);
  if (!c || !cleanlyShutDown(c) || !T.sql?.lsn) return false;
  return lsnValue(T.sql.lsn) > lsnValue(c.checkpointLsn);
}
