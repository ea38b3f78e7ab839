import { assessCluster } from "../cluster/assess.js";
import { formatStatusTable } from "../cluster/format.js";
import { EXIT, InputError, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import type { RoleStep } from "../plan/role-steps.js";
import { executeRoleSteps, hostNamed, observeWith, printRoleDryRun, reachable } from "./role-change.js";
import { healthy, openSession } from "./session.js";

export interface RejoinCommandOptions {
  inventory: string;
  host: string;
  allowReclone: boolean;
  dryRun: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/** Brings a former primary back as a standby of the current one: stop, rewind, configure, start, verify. */
export async function rejoinCommand(opts: RejoinCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession(opts, (spec) => {
    const h = hostNamed(spec, opts.host);
    if (h.role === "primary") throw new InputError(`${h.name} is the inventory's primary; rejoin brings a former primary back as a standby`, "promote another host first");
  });
  try {
    const { spec } = session;
    const h = hostNamed(spec, opts.host);
    const log = (text: string) => out.progress(`[${h.name}] ${text}`);
    const snap = await session.observe();
    const S = reachable(snap, h.name);
    const P = reachable(snap, spec.primary.name);
    if (!P.sql || P.sql.inRecovery) throw new RefusedError(`${spec.primary.name}, the inventory's primary, is not running as a primary`, "run pgrep status");
    const now = assessCluster(spec, snap).find((r) => r.name === h.name)!;
    if (now.state === "streaming") {
      log(`already streams from ${spec.primary.name}; nothing to do`);
      return EXIT.ok;
    }
    const steps: RoleStep[] = [];
    // It must never run as a second primary, and pg_rewind needs it stopped.
    if (S.running) steps.push({ kind: "stop", host: h.name, why: S.sql && !S.sql.inRecovery ? "it runs as a second primary" : "pg_rewind needs it stopped" });
    steps.push({ kind: "checkpoint", host: spec.primary.name, why: "pg_rewind reads the new timeline's history from the last checkpoint" });
    steps.push({ kind: "rewind", host: h.name, from: spec.primary.name, allowReclone: opts.allowReclone, why: "copy only the blocks that diverged" });
    steps.push({ kind: "converge", skip: [], markStandby: h.name, why: `${h.name} streams from ${spec.primary.name}` });
    if (opts.dryRun) return await printRoleDryRun(out, `Rejoin ${h.name} to cluster ${spec.name}`, session, snap, steps);
    const spec2 = await executeRoleSteps({ session, snap, out, streamTimeoutMs: opts.streamTimeoutSeconds * 1000 }, steps);
    const reports = assessCluster(spec2, await observeWith(session, spec2));
    out.result(formatStatusTable(reports));
    return healthy(reports) ? EXIT.ok : EXIT.degraded;
  } finally {
    await session.close();
  }
}
