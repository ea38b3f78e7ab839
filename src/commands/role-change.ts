import { readFile } from "node:fs/promises";
import { assessCluster } from "../cluster/assess.js";
import { formatStatusTable } from "../cluster/format.js";
import type { ClusterSpec } from "../model/cluster.js";
import type { ClusterSnapshot } from "../cluster/state.js";
import { EXIT, PgrepError, type ExitCode } from "../errors.js";
import { clusterFromText } from "../inventory/index.js";
import { withTopology } from "../inventory/update.js";
import type { Output } from "../output.js";
import { formatNotes, formatPhases, textDiff } from "../plan/format.js";
import { edited, roleStepPatch, withHost, type Patch } from "../plan/hypothetical.js";
import { describeRoleStep, stepHost, type RoleStep } from "../plan/role-steps.js";
import { planMarkStandby, planSetup } from "../plan/setup.js";
import type { Phase } from "../plan/steps.js";
import { observeWith, type Session } from "../session/session.js";

// What promote, rejoin and switchover share around the executor: their dry run, and how they end.

/**
 * The end of a role change: the status table, then exit 0, or 5 naming each host that is not in line
 * (`expected` hosts, e.g. an old primary declared down or left for rejoin, are not held against it).
 */
export async function finishRoleChange(session: Session, spec: ClusterSpec, out: Output, primary: string, expected: string[] = []): Promise<ExitCode> {
  const reports = assessCluster(spec, await observeWith(session, spec));
  out.result(formatStatusTable(reports));
  const bad = reports.filter((r) => !r.ok && !expected.includes(r.name));
  if (!bad.length) return EXIT.ok;
  // A host that cannot follow is brought back by rejoin; the others by the next setup, once they answer.
  const rejoin = bad.filter((r) => r.state === "diverged" || r.state === "needs rejoin").map((r) => r.name);
  const later = bad.filter((r) => !rejoin.includes(r.name)).map((r) => r.name);
  const hints = [
    ...(later.length ? [`once ${later.join(" and ")} ${later.length > 1 ? "answer" : "answers"}, run pgrep setup with the same inventory (see the problems above)`] : []),
    ...rejoin.map((n) => `pgrep rejoin ${n} brings ${n} back (pg_rewind)`),
  ];
  throw new PgrepError(`${primary} is the primary, but not every host is in line: ${bad.map((r) => `${r.name} (${r.state})`).join(", ")}`, { exitCode: EXIT.degraded, hint: hints.join("; ") });
}

/** Prints a role change's dry run and says nothing was changed. Await it inside the try: it reads over the open session. */
export async function printRoleDryRun(out: Output, title: string, session: Session, snap: ClusterSnapshot, steps: RoleStep[]): Promise<ExitCode> {
  out.result(await formatRoleDryRun(title, session, snap, steps));
  out.progress("Dry run: nothing was changed.");
  return EXIT.ok;
}

/**
 * A dry run of a role change: its steps with their reasons, the inventory's diff, and the setup plan that
 * would follow (computed on what the hosts would look like by then), with the diff of every file.
 */
async function formatRoleDryRun(title: string, session: Session, snap: ClusterSnapshot, steps: RoleStep[]): Promise<string> {
  const spec = session.spec;
  const lines = [`${title} (dry run):`];
  let spec2 = spec;
  // What the steps before the setup plan would have done, replayed on what observe sees.
  const patches: [string, Patch][] = [];
  for (const step of steps) {
    const host = stepHost(step);
    lines.push(`  ${host ? `[${host}] ` : ""}${describeRoleStep(step)} — ${step.why}`);
    const patch = roleStepPatch(step);
    if (patch) patches.push(patch);
    if (step.kind === "record") {
      const before = await readFile(step.file, "utf8");
      const next = withTopology(step.file, before, step.changes);
      lines.push(...textDiff(step.file, before, next));
      spec2 = clusterFromText(step.file, next);
    }
    if (step.kind === "converge") {
      // Observed again with the new topology (read only): the new primary resolves the hosts' addresses.
      let after = patches.reduce((sn, [h, p]) => withHost(sn, h, p), spec2 === spec ? snap : await observeWith(session, spec2));
      const phases: Phase[] = [];
      const force = new Set(steps.filter((x) => x.kind === "reclone").map((x) => x.host));
      if (step.markStandby && !force.has(step.markStandby) && after.hosts.get(step.markStandby)?.reachable) {
        const markSteps = planMarkStandby(spec2, after, step.markStandby, { rejoin: !!step.rejoinLater });
        lines.push(...formatPhases([{ title: `make ${step.markStandby} a standby whatever it holds`, lanes: [{ host: step.markStandby, steps: markSteps }] }], after, true, "    "));
        after = withHost(after, step.markStandby, edited(markSteps));
      }
      const plan = planSetup(spec2, after, { force, reclone: force, skip: new Set(step.skip), tls: session.tls });
      phases.push(...plan.phases);
      lines.push(...(phases.length ? formatPhases(phases, after, true, "    ") : ["    (nothing else to change)"]), ...formatNotes(plan.notes, "    "));
    }
  }
  return lines.join("\n");
}

