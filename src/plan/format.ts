import { createRequire } from "node:module";
import type * as Diff from "diff";
import { observedContent, type ClusterSnapshot } from "../cluster/state.js";
import { hidePasswords, withoutSettings } from "../postgres/files.js";
import { applyEdit } from "./setup.js";
import { describeStep, stepCount, type Phase, type Plan, type Step } from "./steps.js";

// Human form of a plan: each step with its reason, and a unified diff for every file it would write.
// Pure: it reads only the snapshot observe already took.

// Loaded when a diff is first shown (dry runs), not by every command that imports this file.
let diffModule: typeof Diff | undefined;
function diffLib(): typeof Diff {
  return (diffModule ??= createRequire(import.meta.url)("diff") as typeof Diff);
}

function diffFor(step: Step, snap: ClusterSnapshot, newCluster: boolean): string[] {
  const s = snap.hosts.get(step.host);
  if (!s?.reachable) return [];
  if (step.kind === "write-passfile") return [`      (${step.file.path}: content not shown, it holds the replication password)`];
  if (step.kind === "write-tls") return [`      (${step.dir}/server.key: content not shown, it is a private key)`];
  let path: string, before: string | null, after: string;
  if (step.kind === "reset-auto-conf" && s.files.autoConf !== null) {
    // What ALTER SYSTEM RESET leaves; a password pg_basebackup -R wrote there is not shown.
    path = `${s.layout.dataDir}/postgresql.auto.conf`;
    before = hidePasswords(s.files.autoConf);
    after = hidePasswords(withoutSettings(s.files.autoConf, step.settings));
  } else if (step.kind === "edit-file") {
    path = step.file.path;
    before = observedContent(s, step.file.path) ?? null;
    after = applyEdit(before, step.edit);
  } else return [];
  if (before === after) return [];
  const label = before !== null ? "now" : newCluster ? "(made with the new cluster; its other lines are not shown)" : "(new file)";
  const patch = diffLib().createTwoFilesPatch(path, path, before ?? "", after, label, "after pgrep", { context: 2 });
  return patch
    .split("\n")
    .filter((l) => l && !l.startsWith("=====") && !l.startsWith("Index: "))
    .map((l) => `      ${l}`);
}

export function formatPlan(plan: Plan, snap: ClusterSnapshot, withDiffs: boolean): string {
  const notes = formatNotes(plan.notes, "");
  if (stepCount(plan) === 0) return [`Nothing to change: cluster ${plan.cluster} already matches the inventory${notes.length ? " (except what is listed below)" : ""}.`, ...notes].join("\n");
  return [`Plan for cluster ${plan.cluster} (${stepCount(plan)} steps):`, ...formatPhases(plan.phases, snap, withDiffs, "  "), ...notes].join("\n");
}

/** The hosts a plan leaves as they are, and why. */
export function formatNotes(notes: string[] | undefined, indent: string): string[] {
  return notes?.length ? [`${indent}Left as they are:`, ...notes.map((n) => `${indent}  ${n}`)] : [];
}

export function formatPhases(phases: Phase[], snap: ClusterSnapshot, withDiffs: boolean, indent: string): string[] {
  const lines: string[] = [];
  for (const phase of phases) {
    lines.push(`${indent}${phase.title}${phase.lanes.length > 1 ? " (in parallel)" : ""}:`);
    for (const lane of phase.lanes) {
      const newCluster = lane.steps.some((s) => s.kind === "create-cluster" || s.kind === "clone");
      for (const step of lane.steps) {
        lines.push(`${indent}  [${step.host}] ${describeStep(step)} — ${step.why}`);
        if (withDiffs) lines.push(...diffFor(step, snap, newCluster).map((l) => `${indent.slice(2)}${l}`));
      }
    }
  }
  return lines;
}

/** A unified diff of a file on this machine (the inventory), indented like the others. */
export function textDiff(path: string, before: string, after: string): string[] {
  if (before === after) return [];
  return diffLib().createTwoFilesPatch(path, path, before, after, "now", "after pgrep", { context: 2 })
    .split("\n")
    .filter((l) => l && !l.startsWith("=====") && !l.startsWith("Index: "))
    .map((l) => `      ${l}`);
}
