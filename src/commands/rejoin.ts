import { assessCluster } from "../cluster/assess.js";
import type { ReachableHost } from "../cluster/state.js";
import type { ClusterSpec } from "../model/cluster.js";
import { observeAndFence } from "../apply/fence.js";
import { EXIT, InputError, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import type { RoleStep } from "../plan/role-steps.js";
import { hostNamed, reachable } from "../session/hosts.js";
import { finishRoleChange, printRoleDryRun } from "./role-change.js";
import { executeRoleSteps } from "../apply/role-steps.js";
import { openSession } from "../session/session.js";

export interface RejoinCommandOptions {
  inventory: string;
  /** Seconds to wait for another command's cluster lock. */
  waitLock: number;
  host: string;
  allowReclone: boolean;
  dryRun: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/** Why pg_rewind cannot work here, found before anything is stopped. */
function noRewindReason(spec: ClusterSpec, S: ReachableHost): string | undefined {
  if (!S.caps.rewindWithoutSuperuser) return `pg_rewind on PostgreSQL ${S.caps.major} needs a superuser on the source, and the replication role ${spec.replicationUser} is not one`;
  if (!S.hasPgRewind) return `there is no pg_rewind of PostgreSQL ${S.caps.major} on ${S.name} (in ${S.layout.binDir})`;
  return undefined;
}

/** Brings a former primary back as a standby of the current one: stop, rewind, configure, start, verify. */
export async function rejoinCommand(opts: RejoinCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession({ ...opts, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } }, (spec) => {
    const h = hostNamed(spec, opts.host);
    if (h.role === "primary") throw new InputError(`${h.name} is the inventory's primary; rejoin brings a former primary back as a standby`, "promote another host first");
  });
  try {
    const { spec } = session;
    const h = hostNamed(spec, opts.host);
    const log = (text: string) => out.progress(`[${h.name}] ${text}`);
    const snap = await observeAndFence(session, out, opts.dryRun);
    const S = reachable(snap, h.name);
    const P = reachable(snap, spec.primary.name);
    if (!P.sql || P.sql.inRecovery) throw new RefusedError(`${spec.primary.name}, the inventory's primary, is not running as a primary`, "run pgrep status");
    const now = assessCluster(spec, snap).find((r) => r.name === h.name)!;
    if (now.state === "streaming") {
      log(`already streams from ${spec.primary.name}; nothing to do`);
      return EXIT.ok;
    }
    const steps: RoleStep[] = [];
    // A standby that cannot follow (it diverged) records its last checkpoint first: pg_rewind takes the
    // timeline it is on from there (15 and older), and its last restartpoint may be of an older timeline.
    if (S.running && S.sql?.inRecovery && !noRewindReason(spec, S)) steps.push({ kind: "checkpoint", host: h.name, why: "a restartpoint: pg_rewind reads the timeline it is on from its last checkpoint" });
    // It must never run as a second primary, and pg_rewind needs it stopped.
    if (S.running) steps.push({ kind: "stop", host: h.name, why: S.sql && !S.sql.inRecovery ? "it runs as a second primary" : "pg_rewind needs it stopped" });
    // Found before anything is stopped: where pg_rewind cannot work, say so and offer the copy that does.
    const noRewind = noRewindReason(spec, S);
    if (noRewind && !opts.allowReclone)
      throw new RefusedError(`${h.name} cannot be rewound: ${noRewind}; nothing was changed`, `pass --allow-reclone to copy the whole data directory from ${spec.primary.name} instead`);
    if (noRewind) steps.push({ kind: "reclone", host: h.name, from: spec.primary.name, why: noRewind });
    else {
      steps.push({ kind: "admit", host: h.name, primary: spec.primary.name, why: `pg_rewind connects to it from ${h.name}` });
      steps.push({ kind: "checkpoint", host: spec.primary.name, why: "pg_rewind reads the new timeline's history from the last checkpoint" });
      steps.push({ kind: "rewind", host: h.name, from: spec.primary.name, allowReclone: opts.allowReclone, why: "copy only the blocks that diverged" });
    }
    steps.push({ kind: "converge", skip: [], markStandby: h.name, why: `${h.name} streams from ${spec.primary.name}` });
    if (opts.dryRun) return await printRoleDryRun(out, `Rejoin ${h.name} to cluster ${spec.name}`, session, snap, steps);
    const spec2 = await executeRoleSteps({ session, snap, out, streamTimeoutMs: opts.streamTimeoutSeconds * 1000 }, steps);
    return await finishRoleChange(session, spec2, out, spec2.primary.name);
  } finally {
    await session.close();
  }
}
