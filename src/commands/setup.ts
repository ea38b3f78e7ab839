import { suggest } from "../inventory/suggest.js";
import { observeAndFence } from "../apply/fence.js";
import { clusterDrift } from "../cluster/drift.js";
import { formatDrift, formatStatusTable } from "../cluster/format.js";
import { EXIT, InputError, PgrepError, type ExitCode } from "../errors.js";
import { executePlan } from "../apply/execute.js";
import { planSetup } from "../plan/setup.js";
import { formatNotes, formatPlan } from "../plan/format.js";
import { stepCount, withoutSwitchover } from "../plan/steps.js";
import { lineReporter, type Output } from "../output.js";
import { assessCluster } from "../cluster/assess.js";
import { healthy, openSession } from "../session/session.js";
import { switchOver } from "./switchover.js";

export interface SetupCommandOptions {
  inventory: string;
  /** Seconds to wait for another command's cluster lock. */
  waitLock: number;
  /** Print the plan with a diff of every file, then stop: nothing is executed. */
  dryRun: boolean;
  force: string[];
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
  /** When the primary needs a restart for a setting: "restart" (last, after its standbys), "switchover", or a standby's name. */
  restartPrimary: string;
  /** Reset what postgresql.auto.conf sets over pgrep's settings. */
  resetAutoConf: boolean;
  /** A switchover's limit on how far behind its target may be. */
  maxLagBytes: number;
}

export async function setupCommand(opts: SetupCommandOptions, out: Output): Promise<ExitCode> {
  // A dry run does not even create the password file beside the inventory.
  const session = await openSession({ ...opts, password: opts.dryRun ? "optional" : "create", apps: opts.dryRun ? "read" : "create", lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } }, (spec) => {
    for (const name of opts.force) {
      const h = spec.hosts.find((x) => x.name === name);
      if (!h) throw new InputError(`--force: no host named '${name}' in ${opts.inventory}${suggest(name, spec.hosts.map((x) => x.name))}`, `hosts: ${spec.hosts.map((x) => x.name).join(", ")}`);
      if (h.role === "primary") throw new InputError(`--force ${name}: pgrep never replaces a primary's data; --force is for standbys`);
    }
  });
  try {
    const { spec } = session;
    const snap = await observeAndFence(session, out, opts.dryRun);
    // Standbys that are down (or wait for rejoin) are left out; the others converge. The primary must answer.
    const plan = planSetup(spec, snap, { force: new Set(opts.force), tls: session.tls, apps: true, restartPrimary: opts.restartPrimary, resetAutoConf: opts.resetAutoConf });
    if (opts.dryRun) {
      // Changes to make, or settings that differ without a change pgrep would make (ALTER SYSTEM, a
      // pending restart): exit 7, so that a cron job or a monitoring check can tell.
      const drift = clusterDrift(spec, snap, plan);
      const differs = stepCount(plan) > 0 || drift.size > 0;
      out.result([formatPlan(plan, snap, true), ...formatDrift(drift)].join("\n"));
      out.progress(differs ? "Dry run: nothing was changed; the cluster differs from the inventory (exit 7)." : "Dry run: nothing was changed.");
      return differs ? EXIT.differs : EXIT.ok;
    }
    if (stepCount(plan) === 0) {
      out.progress([`Nothing to change: cluster ${spec.name} already matches ${opts.inventory}${plan.notes?.length ? " (except what is listed below)" : ""}.`, ...formatNotes(plan.notes, "")].join("\n"));
    } else {
      out.progress(formatPlan(plan, snap, false));
      const { plan: first, switchover } = withoutSwitchover(plan);
      await executePlan(first, { spec, snap, password: session.password!, appPasswords: session.appPasswords, tls: session.tls, report: lineReporter(out), streamTimeoutMs: opts.streamTimeoutSeconds * 1000 });
      // The primary's restart as a switchover: its own command's steps, status and exit code.
      if (switchover) return await switchOver(session, await session.observe(), { ...opts, target: switchover.host, dryRun: false }, out);
    }
    // With nothing done, what was observed is still what is there: no second look.
    const reports = assessCluster(spec, stepCount(plan) ? await session.observe() : snap);
    out.result(formatStatusTable(reports));
    if (!healthy(reports)) {
      throw new PgrepError(`cluster ${spec.name} is not healthy after setup (see the problems above)`, { exitCode: EXIT.degraded });
    }
    return EXIT.ok;
  } finally {
    await session.close();
  }
}
