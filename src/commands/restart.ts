import { assessCluster } from "../cluster/assess.js";
import { observeAndFence } from "../apply/fence.js";
import { formatStatusTable } from "../cluster/format.js";
import { EXIT, PgrepError, RefusedError, type ExitCode } from "../errors.js";
import { executePlan } from "../apply/execute.js";
import { lineReporter, type Output } from "../output.js";
import { formatPlan } from "../plan/format.js";
import { planRestart } from "../plan/rolling.js";
import { withoutSwitchover, type Plan } from "../plan/steps.js";
import { hostNamed } from "../session/hosts.js";
import { healthy, openSession } from "../session/session.js";
import { switchOver } from "./switchover.js";

export interface RestartCommandOptions {
  inventory: string;
  hosts: string[];
  /** "restart" (the primary last), "switchover", or the standby to switch over to. */
  restartPrimary: string;
  waitLock: number;
  dryRun: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
  maxLagBytes: number;
}

/** Restarts hosts one at a time (after a minor-version upgrade, say), each proven streaming before the next. */
export async function restartCommand(opts: RestartCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession({ ...opts, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } }, (spec) => {
    for (const name of opts.hosts) hostNamed(spec, name);
  });
  try {
    const { spec } = session;
    const snap = await observeAndFence(session, out, opts.dryRun);
    const { phases, problems } = planRestart(spec, snap, opts.hosts, opts.restartPrimary);
    const notInLine = assessCluster(spec, snap).filter((r) => !r.ok);
    if (notInLine.length) problems.push(`the cluster is not healthy: ${notInLine.map((r) => `${r.name} ${r.state}`).join(", ")}`);
    if (problems.length) throw new RefusedError(problems.join("\n"), "nothing was restarted; a rolling restart starts from a healthy cluster (pgrep setup, pgrep status)");
    const plan: Plan = { command: "restart", cluster: spec.name, phases };
    if (opts.dryRun) {
      out.result(formatPlan(plan, snap, false));
      out.progress("Dry run: nothing was changed.");
      return EXIT.ok;
    }
    out.progress(formatPlan(plan, snap, false));
    const { plan: first, switchover } = withoutSwitchover(plan);
    await executePlan(first, { spec, snap, password: session.password!, report: lineReporter(out), streamTimeoutMs: opts.streamTimeoutSeconds * 1000 });
    if (switchover) return await switchOver(session, await session.observe(), { ...opts, target: switchover.host, dryRun: false }, out);
    const reports = assessCluster(spec, await session.observe());
    out.result(formatStatusTable(reports));
    if (!healthy(reports)) throw new PgrepError(`cluster ${spec.name} is not healthy after the restart (see the problems above)`, { exitCode: EXIT.degraded });
    return EXIT.ok;
  } finally {
    await session.close();
  }
}
