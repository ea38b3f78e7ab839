import type { ClusterSpec } from "../model/cluster.js";
import type { ClusterSnapshot } from "../cluster/state.js";
import type { HostUpgradeFacts, PrimaryFacts } from "../cluster/upgrade-facts.js";
import { LONG_TRANSACTION_S } from "../cluster/upgrade-facts.js";
import { assessCluster } from "../cluster/assess.js";
import { upgradeNeedsUnlimitedSlotKeep } from "../postgres/versions.js";
import { initdbOptions } from "../postgres/upgrade.js";

// What must hold before a major upgrade stops anything, each problem with its fix; and the procedure, as
// the dry run prints it. Pure: the facts are read by cluster/upgrade-facts.ts.

export interface UpgradeFacts {
  from: number;
  to: number;
  old: ClusterSnapshot;
  /** The same hosts read at the new major's paths (binaries, data directory, configuration). */
  next: ClusterSnapshot;
  primary: PrimaryFacts | undefined;
  hosts: Map<string, HostUpgradeFacts>;
}

const GIB = 1024 ** 3;

/** Free space the new catalog and WAL need beside hard-linked data: 1 GiB and 5% of the data. */
export function spaceNeeded(dataBytes: number): number {
  return GIB + Math.ceil(dataBytes * 0.05);
}

export function upgradeProblems(spec: ClusterSpec, f: UpgradeFacts): string[] {
  const problems: string[] = [];
  const P = spec.primary;
  if (f.to <= f.from) problems.push(`--major ${f.to}: the cluster runs PostgreSQL ${f.from}; an upgrade goes to a newer major`);
  const layouts = [...new Set(spec.hosts.map((h) => h.pg.layout))];
  if (layouts.some((l) => l !== "debian")) problems.push(`the ${layouts.filter((l) => l !== "debian").join(", ")} layout: pgrep upgrade handles the debian layout so far; upgrade these hosts by the pg_upgrade documentation`);
  if (spec.hosts.some((h) => h.pg.dataDir)) problems.push("postgres.data_dir is set: pgrep cannot tell where the new major's data directory goes; leave it out (the layout's own path per major)");
  const unwell = assessCluster(spec, f.old).filter((r) => !r.ok);
  if (unwell.length) problems.push(`the cluster is not healthy: ${unwell.map((r) => `${r.name} ${r.state}`).join(", ")}; every standby must stream (pgrep status, pgrep setup)`);
  const glibc = new Map<string, string[]>();
  for (const h of spec.hosts) {
    const n = f.next.hosts.get(h.name);
    const o = f.old.hosts.get(h.name);
    const x = f.hosts.get(h.name);
    if (!n?.reachable) {
      problems.push(`${h.name}: no PostgreSQL ${f.to} server binaries; install postgresql-${f.to} on every host first`);
      continue;
    }
    if (n.dataDirExists)
      problems.push(`${h.name}: ${n.layout.dataDir} already exists; pgrep never writes over a data directory. If it is the empty cluster the package install made, remove it: pg_dropcluster --stop ${f.to} ${h.pg.clusterName}`);
    else if (n.files.mainConf !== null) problems.push(`${h.name}: ${n.layout.mainConf} already exists (a ${f.to}/${h.pg.clusterName} cluster's configuration without its data); remove /etc/postgresql/${f.to}/${h.pg.clusterName}`);
    if (!o?.reachable || !x) continue;
    const po = f.old.hosts.get(P.name);
    if (po?.reachable && po.layout.dataDir !== o.layout.dataDir)
      problems.push(`${h.name}: its data directory is not at the primary's path; the standbys' copy keeps paths`);
    if (h === P && !x.hasPgUpgrade) problems.push(`${h.name}: no pg_upgrade in ${n.layout.binDir}; install the package that has it (postgresql-${f.to})`);
    if (!x.hasRsync) problems.push(`${h.name}: no rsync; the standbys' copy needs it on every host (apt-get install rsync)`);
    if (x.missingLibraries.length) problems.push(`${h.name}: PostgreSQL ${f.to} has no ${x.missingLibraries.join(", ")} library here (shared_preload_libraries or an extension); install the extension's package for ${f.to} on ${h.name}`);
    if (x.missingExtensions.length) problems.push(`${h.name}: PostgreSQL ${f.to} cannot install the extension${x.missingExtensions.length > 1 ? "s" : ""} ${x.missingExtensions.join(", ")} here; install ${x.missingExtensions.length > 1 ? "their packages" : "its package"} for ${f.to} on ${h.name}`);
    if (x.tablespaces > 0) problems.push(`${h.name}: the cluster has tablespaces, which pgrep upgrade does not copy yet`);
    if (x.walLinked) problems.push(`${h.name}: pg_wal is a symbolic link to another place, which pgrep upgrade does not handle yet`);
    if (f.primary && x.freeBytes < spaceNeeded(f.primary.bytes))
      problems.push(`${h.name}: ${gib(x.freeBytes)} free beside ${n.layout.dataDir}; the upgrade needs ${gib(spaceNeeded(f.primary.bytes))} (1 GiB and 5% of the data: new catalogs and WAL; the data is hard-linked); free some space`);
    if (upgradeNeedsUnlimitedSlotKeep(x.newVersion) && spec.maxSlotWalKeepSize !== "-1")
      problems.push(`${h.name}: pg_upgrade of PostgreSQL ${x.newVersion} fails while max_slot_wal_keep_size is not -1; install ${f.to}.6 or later, or set replication.max_slot_wal_keep_size: -1 for the upgrade`);
    glibc.set(x.glibc, [...(glibc.get(x.glibc) ?? []), h.name]);
  }
  if (glibc.size > 1)
    problems.push(`the hosts have different C libraries (${[...glibc].map(([v, hs]) => `${v} on ${hs.join(", ")}`).join("; ")}): text sorts differently, and a standby's copied indexes would not match its own; upgrade the OS alike first (then REINDEX)`);
  const pf = f.primary;
  if (pf) {
    if (pf.preparedTransactions) problems.push(`${P.name}: ${pf.preparedTransactions} prepared transaction${pf.preparedTransactions > 1 ? "s" : ""} (pg_prepared_xacts); COMMIT PREPARED or ROLLBACK PREPARED them: pg_upgrade refuses a cluster with any`);
    for (const t of pf.longTransactions)
      problems.push(`${P.name}: a transaction open for ${t.seconds} s (pid ${t.pid}, ${t.user} in ${t.database}; over ${LONG_TRANSACTION_S} s); the upgrade's clean stop would end it: let it finish, or end it with pg_terminate_backend(${t.pid})`);
    if (pf.collationChanged.length)
      problems.push(`${P.name}: the collation version changed under ${pf.collationChanged.join(", ")} (the OS's C library or ICU was upgraded); REINDEX what uses text, then ALTER DATABASE … REFRESH COLLATION VERSION`);
  }
  return problems;
}

function gib(bytes: number): string {
  return `${(bytes / GIB).toFixed(1)} GiB`;
}

/** The procedure, step by step, as the dry run and the upgrade itself print it. */
export function upgradeProcedure(spec: ClusterSpec, f: UpgradeFacts, newCaps: Parameters<typeof initdbOptions>[1]): string[] {
  const P = spec.primary.name;
  const standbys = spec.standbys.map((h) => h.name);
  const old = f.old.hosts.get(P);
  const next = f.next.hosts.get(P);
  const oldDir = old?.reachable ? old.layout.dataDir : "?";
  const newDir = next?.reachable ? next.layout.dataDir : "?";
  const opts = f.primary ? initdbOptions(f.primary, newCaps).join(" ") : "";
  return [
    `1. ${P}: pg_upgrade --check against the running cluster (done: it passed)`,
    `2. ${P}: stop PostgreSQL ${f.from} cleanly; writes are refused from here until ${P} runs ${f.to} (step 7)`,
    `3. ${standbys.join(", ") || "(no standbys)"}: wait until each has replayed ${P}'s shutdown checkpoint, then stop; refuse unless every standby's latest checkpoint equals ${P}'s (everything starts again on ${f.from})`,
    `4. ${P}: initdb ${newDir} (${opts}); configuration carried from ${f.from}; pg_upgrade --link from ${oldDir}`,
    `5. ${standbys.join(", ") || "(no standbys)"}: configuration carried from ${f.from}; rsync --hard-links --size-only of both data directories from ${P} (only the new catalog and what differs travel); standby mode`,
    `   until here a failure puts the ${f.from} cluster back on every host and starts it`,
    `6. ${spec.inventoryFile}: postgres.major ${f.from} → ${f.to}`,
    `7. setup on ${f.to}: pgrep's settings, pg_hba, slots; ${P} starts, then the standbys, each seen streaming`,
    `8. ${P}: vacuumdb --all --analyze-in-stages${newCaps.upgradeKeepsStatistics ? " --missing-stats-only" : ""} (the planner's statistics${newCaps.upgradeKeepsStatistics ? " pg_upgrade did not carry" : " do not survive pg_upgrade"})`,
    `   the ${f.from} clusters stay on disk, set not to start (start.conf manual); remove them when satisfied: pg_dropcluster ${f.from} ${spec.primary.pg.clusterName} on every host`,
  ];
}
