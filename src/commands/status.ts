import { formatStatusTable } from "../cluster/format.js";
import { EXIT, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { assessCluster } from "../cluster/assess.js";
import { healthy, openSession } from "../session/session.js";
import { clusterDrift } from "../cluster/drift.js";
import type { ClusterSpec } from "../model/cluster.js";
import type { ClusterSnapshot } from "../cluster/state.js";
import { planSetup } from "../plan/setup.js";
import type { Plan } from "../plan/steps.js";
import type { TlsMaterial } from "../tls/material.js";
import { migrationLines } from "../cluster/migration-status.js";
import { sqlTarget } from "../apply/context.js";

/**
 * The setup plan for what observe saw; or, when setup would refuse, what it refuses (told as drift: no
 * file drift then). Nothing when it cannot plan at all (the primary unreachable: the table says so).
 */
function plannedOrRefused(spec: ClusterSpec, snap: ClusterSnapshot, tls: TlsMaterial | undefined): { plan?: Plan; refused?: string } {
  try {
    return { plan: planSetup(spec, snap, { force: new Set(), tls, apps: true }) };
  } catch (e) {
    return e instanceof RefusedError ? { refused: e.message } : {};
  }
}

export interface StatusCommandOptions {
  inventory: string;
  json: boolean;
  acceptNewHostKeys: boolean;
}

/**
 * Exit 0 when every host is as the inventory wants; 8 when a host the inventory calls a standby accepts
 * writes (split brain); 3 when a host cannot be reached; 5 (degraded) when one is not in line; 7 when all
 * are healthy but something differs from the inventory (see clusterDrift), setup's refusals included.
 */
export async function statusCommand(opts: StatusCommandOptions, out: Output): Promise<ExitCode> {
  // The applications' passwords are read (never made) so that a role whose password differs is told.
  const session = await openSession({ ...opts, password: "optional", apps: "read" });
  try {
    const { spec } = session;
    const snap = await session.observe();
    const reports = assessCluster(spec, snap);
    const { plan, refused } = plannedOrRefused(spec, snap, session.tls);
    const drift = clusterDrift(spec, snap, plan);
    // Each line of a refusal names its host ("db2: …"); one that does not goes with the primary.
    for (const line of refused?.split("\n") ?? []) {
      const host = spec.hosts.find((h) => line.startsWith(`${h.name}: `))?.name ?? spec.primary.name;
      drift.set(host, [...(drift.get(host) ?? []), `setup refuses: ${line.startsWith(`${host}: `) ? line.slice(host.length + 2) : line}`]);
    }
    const { maxLagSeconds } = spec.apps;
    const splitBrain = reports.filter((r) => r.state === "split brain").map((r) => r.name);
    // A migration under way (pgrep migrate) is read from the primary, when it answers.
    const P = snap.hosts.get(spec.primary.name);
    const migration = P?.reachable && P.sql && P.psql ? await migrationLines(sqlTarget(spec.primary, P)).catch(() => []) : [];
    if (migration.length) expectMigrationReadOnly(drift, spec.primary.name, migration);
    const headline = splitBrain.length ? [`SPLIT BRAIN: ${splitBrain.join(", ")} accept${splitBrain.length > 1 ? "" : "s"} writes, but the inventory's primary is ${spec.primary.name} (see the problems below)`, ""] : [];
    out.result(
      opts.json
        ? JSON.stringify({ cluster: spec.name, healthy: healthy(reports), splitBrain, differs: drift.size > 0, maxLagSeconds, hosts: reports.map((r) => ({ ...r, differs: drift.get(r.name) ?? [] })), migration: migration.slice(2).map((l) => l.trim()) }, null, 2)
        : [...headline, formatStatusTable(reports, maxLagSeconds, drift), ...migration].join("\n"),
    );
    if (splitBrain.length) return EXIT.splitBrain;
    if (reports.some((r) => r.state === "unreachable")) return EXIT.unreachable;
    if (!healthy(reports)) return EXIT.degraded;
    return drift.size ? EXIT.differs : EXIT.ok;
  } finally {
    await session.close();
  }
}

/**
 * pgrep migrate refuses writes on a side that must not take them (ALTER SYSTEM default_transaction_read_only):
 * while the migration is under way that is said with it, not as drift.
 */
function expectMigrationReadOnly(drift: Map<string, string[]>, primary: string, migration: string[]): void {
  const said = drift.get(primary) ?? [];
  const setting = "default_transaction_read_only";
  const kept = said
    .map((d) => (d.startsWith("postgresql.auto.conf (ALTER SYSTEM) sets ") ? d.replace(`${setting}, `, "").replace(`, ${setting}`, "") : d))
    .filter((d) => d !== `postgresql.auto.conf (ALTER SYSTEM) sets ${setting}`);
  if (kept.length === said.length && kept.every((d, i) => d === said[i])) return;
  migration.push(`  writes refused here until the cut-over (${setting}, set by pgrep migrate)`);
  if (kept.length) drift.set(primary, kept);
  else drift.delete(primary);
}
