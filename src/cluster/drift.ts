import { parseSettings } from "../postgres/files.js";
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
  for (const h of spec.hosts) {
    const s = snap.hosts.get(h.name);
    if (!s?.reachable) continue;
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
