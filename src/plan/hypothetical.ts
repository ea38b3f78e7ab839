import type { ClusterSnapshot, HostState, ReachableHost } from "../cluster/state.js";
import { applyEdit } from "./setup.js";
import type { RoleStep } from "./role-steps.js";
import type { Step } from "./steps.js";

// What the hosts would look like after steps that a dry run does not take, so that the plan for what comes
// next (the setup plan after a promotion) can be computed and shown with its diffs. Pure; copies only.

export type Patch = (s: ReachableHost) => ReachableHost;

export function withHost(snap: ClusterSnapshot, name: string, patch: Patch): ClusterSnapshot {
  const hosts = new Map<string, HostState>(snap.hosts);
  const s = hosts.get(name);
  if (s?.reachable) hosts.set(name, patch({ ...s, files: { ...s.files } }));
  return { ...snap, hosts };
}

export const stopped: Patch = (s) => ({ ...s, running: false, sql: undefined });

/** Promotion ends recovery: the standby markers go (10/11 rename recovery.conf, 12+ remove standby.signal). */
export const promoted: Patch = (s) => ({
  ...s,
  hasStandbySignal: false,
  hasRecoveryConf: false,
  files: { ...s.files, recoveryConf: null },
  ...(s.sql ? { sql: { ...s.sql, inRecovery: false, receiver: null } } : {}),
});

/** Promoted, with the slots its standbys stream through made on it just before. */
export function promotedWithSlots(slots: readonly string[]): Patch {
  return (s) => {
    const p = promoted(s);
    if (!p.sql) return p;
    const added = slots.filter((n) => !p.sql!.slots.some((x) => x.name === n)).map((name) => ({ name, active: false, retained_bytes: 0, wal_status: "reserved" }));
    return { ...p, sql: { ...p.sql, slots: [...p.sql.slots, ...added] } };
  };
}

/** What a role change's stop or promotion leaves of its host (other steps: nothing known exactly). */
export function roleStepPatch(step: RoleStep): [string, Patch] | undefined {
  if (step.kind === "stop") return [step.host, stopped];
  if (step.kind === "promote") return [step.host, promotedWithSlots(step.slots)];
  return undefined;
}

/** File edits of `steps` applied to what observe saw. */
export function edited(steps: Step[]): Patch {
  return (s) => {
    const next = { ...s, files: { ...s.files } };
    const L = s.layout;
    for (const step of steps) {
      if (step.kind === "remove-file" && step.path === `${L.dataDir}/recovery.conf`) {
        next.files.recoveryConf = null;
        next.hasRecoveryConf = false;
      }
      if (step.kind !== "edit-file") continue;
      const p = step.file.path;
      if (p === `${L.dataDir}/standby.signal`) next.hasStandbySignal = true;
      else if (p === `${L.dataDir}.pgrep-rejoin`) next.needsRejoin = true;
      else if (p === `${L.dataDir}/recovery.conf`) {
        next.files.recoveryConf = applyEdit(next.files.recoveryConf, step.edit);
        next.hasRecoveryConf = true;
      } else if (p === L.settingsFile) next.files.settings = applyEdit(next.files.settings, step.edit);
      else if (p === L.hbaFile) next.files.hba = applyEdit(next.files.hba, step.edit);
      else if (p === L.mainConf) next.files.mainConf = applyEdit(next.files.mainConf, step.edit);
    }
    return next;
  };
}
