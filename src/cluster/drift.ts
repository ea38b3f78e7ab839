import { confValue, parseSettings } from "../postgres/files.js";
import type { Plan } from "../plan/steps.js";
import type { ClusterSpec } from "../model/cluster.js";
import { observedContent, type ClusterSnapshot } from "./state.js";

// What differs from the inventory on a host that is otherwise healthy: a file pgrep manages that is not
// what pgrep would write (edited by hand, or the inventory changed since the last setup), settings that
// ALTER SYSTEM put in postgresql.auto.conf (they override every configuration file), and a restart that
// settings wait for. Pure; for status and setup --dry-run, whose exit code 7 lets a cron job or a
// monitoring check alert on it.

export function clusterDrift(spec: ClusterSpec, snap: ClusterSnapshot, plan: Plan | undefined): Map<string, string[]> {
  const drift = new Map<string, string[]>();
  const add = (host: string, what: string) => drift.set(host, [...(drift.get(host) ?? []), what]);
  for (const step of plan?.phases.flatMap((p) => p.lanes.flatMap((l) => l.steps)) ?? []) {
    if (step.kind !== "edit-file") continue;
    const s = snap.hosts.get(step.host);
    // A file that is missing or not read here belongs to work setup has not done yet: not drift.
    if (!s?.reachable || observedContent(s, step.file.path) == null || step.file.path.endsWith("/standby.signal")) continue;
    add(step.host, `${step.file.path} differs from what pgrep writes (edited by hand, or the inventory changed)`);
  }
  for (const d of plan?.differs ?? []) add(d.host, d.what);
  for (const h of spec.hosts) {
    const s = snap.hosts.get(h.name);
    if (!s?.reachable) continue;
    if (s.running && s.files.settings === null) add(h.name, `${s.layout.settingsFile} is missing: pgrep's settings do not apply (deleted, or setup has not run here)`);
    const after = overriddenAfterInclude(s.files.mainConf, s.files.settings, s.layout.includeLine);
    if (after.length) add(h.name, `${s.layout.mainConf} sets ${after.join(", ")} after it includes pgrep's settings, and so overrides them`);
    const altered = [...parseSettings(s.files.autoConf).keys()];
    if (altered.length) {
      const managed = parseSettings(s.files.settings);
      const over = altered.filter((n) => managed.has(n));
      add(
        h.name,
        `postgresql.auto.conf (ALTER SYSTEM) sets ${altered.join(", ")}${over.length ? `, overriding pgrep's ${over.join(", ")}` : ""}`,
      );
    }
    if (s.sql?.pendingRestart.length) add(h.name, `waits for a restart to apply ${s.sql.pendingRestart.join(", ")}`);
  }
  return drift;
}

/**
 * Settings of pgrep's that the main postgresql.conf sets again, to another value, after the line that
 * includes pgrep's file (Debian: include_dir = 'conf.d'; elsewhere pgrep's own include line): the later
 * one wins.
 */
export function overriddenAfterInclude(mainConf: string | null, settings: string | null, includeLine: string | null): string[] {
  if (mainConf === null || settings === null) return [];
  const lines = mainConf.split("\n");
  const include = includeLine === null ? /^\s*include_dir\s*=?\s*'?conf\.d'?/ : new RegExp(`^\\s*${includeLine.split(/\s/)[0]}\\s*=?\\s*'?pgrep\\.conf'?`);
  let at = -1;
  lines.forEach((l, i) => include.test(l) && (at = i));
  if (at === -1) return [];
  const ours = parseSettings(settings);
  // Set again to the same value, a line changes nothing (a hand-built primary's listen_addresses = '*').
  return [...parseSettings(lines.slice(at + 1).join("\n"))].filter(([n, v]) => ours.has(n) && confValue(ours.get(n)) !== confValue(v)).map(([n]) => n);
}
