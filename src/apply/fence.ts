import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import type { Output } from "../output.js";
import { stopped, withHost } from "../plan/hypothetical.js";
import { planMarkStandby } from "../plan/setup.js";
import { hostNamed } from "../session/hosts.js";
import { observeWith, type Session } from "../session/session.js";
import { execContext } from "./role-steps.js";
import { executePlan } from "./execute.js";
import { control } from "./host-ops.js";

// Split brain: a host the inventory calls a standby accepts writes while the inventory's primary does too
// (a primary declared down that was only frozen, and thawed). Every command that changes the cluster
// fences it before anything else: stopped, and marked as a standby that waits for `pgrep rejoin`, so that
// it can never take writes again until it is rewound. Its own writes stay on its disk until then.

/**
 * The standbys that accept writes while the inventory's primary does too, and are of its cluster (the same
 * system identifier): another cluster's primary on a standby's host is someone else's data, which setup
 * refuses to touch — never fenced.
 */
export function strayPrimaries(session: Session, snap: ClusterSnapshot): ReachableHost[] {
  const P = snap.hosts.get(session.spec.primary.name);
  if (!P?.reachable || !P.sql || P.sql.inRecovery) return [];
  const sysid = P.sql.sysid;
  return session.spec.standbys.flatMap((h) => {
    const s = snap.hosts.get(h.name);
    return s?.reachable && s.running && s.sql && !s.sql.inRecovery && s.sql.sysid === sysid ? [s] : [];
  });
}

/** Fences every stray primary (a dry run only says it would); returns the hosts as they are then. */
export async function fenceSplitBrain(session: Session, snap: ClusterSnapshot, out: Output, dryRun: boolean): Promise<{ snap: ClusterSnapshot; names: string[] }> {
  const stray = strayPrimaries(session, snap);
  if (!stray.length) return { snap, names: [] };
  const { spec } = session;
  for (const s of stray) {
    const why = `split brain: it accepts writes, and so does ${spec.primary.name}, the inventory's primary`;
    if (dryRun) {
      out.progress(`[${s.name}] ${why}: pgrep would stop it first and mark it for pgrep rejoin ${s.name}`);
      snap = withHost(snap, s.name, (x) => ({ ...stopped(x), needsRejoin: true }));
      continue;
    }
    out.progress(`[${s.name}] ${why}: stopping it and marking it for pgrep rejoin ${s.name} (what it wrote stays on its disk until then)`);
    await control(hostNamed(spec, s.name), s, "stop");
    const after = withHost(snap, s.name, stopped);
    const steps = planMarkStandby(spec, after, s.name, { rejoin: true });
    await executePlan({ command: "fence", cluster: spec.name, phases: [{ title: "split brain", lanes: [{ host: s.name, steps }] }] }, execContext(session, spec, after, out, 60_000));
    out.progress(`[${s.name}] ✓ fenced: stopped, and marked as a standby of ${spec.primary.name} that waits for pgrep rejoin ${s.name}`);
  }
  return { snap: dryRun ? snap : await observeWith(session, spec), names: stray.map((s) => s.name) };
}

/** A changing command's first look: every host read, and any stray primary fenced before anything else. */
export async function observeAndFence(session: Session, out: Output, dryRun: boolean): Promise<ClusterSnapshot> {
  return (await fenceSplitBrain(session, await session.observe(), out, dryRun)).snap;
}
