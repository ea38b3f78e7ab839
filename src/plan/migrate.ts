import type { ClusterSpec } from "../model/cluster.js";
import { qualified, type DatabaseFacts, type SchemaFacts } from "../postgres/logical.js";

// What pgrep migrate checks before it changes anything, and the steps it shows: pure, from facts read.

export interface MigrateFacts {
  /** The old primary's wal_level. */
  walLevel: string;
  databases: DatabaseFacts[];
  schemas: Map<string, SchemaFacts>;
  preparedXacts: number;
  freeSlots: number;
}

/** Every reason the migration could not carry the data whole, each with its fix; empty when none. */
export function migrateProblems(old: ClusterSpec, next: ClusterSpec, f: MigrateFacts, oldFile: string, newFile: string): string[] {
  const p: string[] = [];
  if (f.walLevel !== "logical")
    p.push(`${old.primary.name}: wal_level is ${f.walLevel}; logical replication needs logical. Add wal_level: logical to postgres.settings in ${oldFile} and run pgrep setup -i ${oldFile} (it restarts the primary)`);
  if (next.primary.pg.settings.wal_level !== "logical")
    p.push(`${newFile} must set wal_level: logical in postgres.settings: the way back after the cut-over replicates from ${next.primary.name}`);
  const oldMajor = old.primary.pg.major ?? 0;
  const newMajor = next.primary.pg.major ?? 0;
  if (newMajor < oldMajor) p.push(`${newFile} is at PostgreSQL ${newMajor}, older than ${oldMajor}: migrate goes to the same major or a newer one`);
  const shared = next.hosts.filter((n) => old.hosts.some((o) => o.address === n.address || o.name === n.name));
  if (shared.length) p.push(`${shared.map((h) => h.name).join(", ")}: in both inventories; the new cluster needs hosts of its own`);
  if (f.freeSlots < f.databases.length) p.push(`${old.primary.name}: ${f.databases.length} replication slots needed (one per database), ${f.freeSlots} free; raise max_replication_slots and max_wal_senders in postgres.settings of ${oldFile}`);
  if (f.preparedXacts) p.push(`${old.primary.name}: ${f.preparedXacts} prepared transaction(s); logical replication does not carry them until they commit: COMMIT PREPARED or ROLLBACK PREPARED them`);
  for (const [db, s] of f.schemas) {
    const noKey = s.tables.filter((t) => !t.key);
    if (noKey.length) p.push(`${db}: ${noKey.map(qualified).join(", ")} ha${noKey.length > 1 ? "ve" : "s"} no primary key: updates and deletes could not be replicated, and rows could not be checked in key order. Add one (ALTER TABLE … ADD PRIMARY KEY)`);
    const unlogged = s.tables.filter((t) => t.unlogged);
    if (unlogged.length) p.push(`${db}: ${unlogged.map(qualified).join(", ")} ${unlogged.length > 1 ? "are" : "is"} unlogged: logical replication does not carry unlogged tables. ALTER TABLE … SET LOGGED, or drop ${unlogged.length > 1 ? "them" : "it"}`);
    if (s.largeObjects) p.push(`${db}: ${s.largeObjects} large object(s): logical replication does not carry them; move them into bytea columns first`);
  }
  return p;
}

/** The steps of the start, as the dry run shows them. */
export function startSteps(old: ClusterSpec, next: ClusterSpec, f: MigrateFacts): string[] {
  const dbs = f.databases.map((d) => d.name).join(", ");
  const tables = [...f.schemas.values()].reduce((n, s) => n + s.tables.length, 0);
  return [
    `set up cluster ${next.name} (as pgrep setup -i would): ${next.hosts.map((h) => `${h.name} (${h.role})`).join(", ")}`,
    `[${next.primary.name}] the roles ${old.name} has and ${next.name} lacks, from pg_dumpall --roles-only (its own roles keep their passwords)`,
    `[${next.primary.name}] the databases ${dbs}, and each one's schema from pg_dump --schema-only`,
    `[${next.primary.name}] refuse writes until the cut-over (default_transaction_read_only)`,
    `[${old.primary.name}] role pgrep_migrate (replication, reads every table), a publication of every table in each database, a pg_hba block for ${next.primary.name}`,
    `[${next.primary.name}] subscribe each database to ${old.primary.name}; ${tables} table(s) copied, then kept up to date`,
    `[${next.primary.name}] once every table is copied: VACUUM ANALYZE of each database; then show the migration (run again, or pgrep status, to see it; --cutover when ready)`,
    "not carried by logical replication, and what is done: sequences are set at the cut-over; schema changes (DDL) are not replicated, so change no schema until the migration ends",
  ];
}

export function cutoverSteps(old: ClusterSpec, next: ClusterSpec): string[] {
  return [
    `[${old.primary.name}] refuse writes (default_transaction_read_only) and end every client session`,
    `[${next.primary.name}] wait until it has applied ${old.primary.name}'s last write`,
    `[${next.primary.name}] every sequence set to ${old.primary.name}'s value`,
    "every table counted and hashed in key order, in chunks, on both primaries; any difference: writes go back to the old primary, nothing else changes",
    `[${next.primary.name}] end the subscriptions; publish every table for the way back; [${old.primary.name}] subscribe to it (no copy)`,
    `[${next.primary.name}] take writes; the write pause is printed`,
  ];
}

export function rollbackSteps(old: ClusterSpec, next: ClusterSpec): string[] {
  return [
    `[${next.primary.name}] refuse writes and end every client session`,
    `[${old.primary.name}] wait until it has applied ${next.primary.name}'s last write; every sequence set to ${next.primary.name}'s value; every table checked`,
    `[${old.primary.name}] end the way back, take writes again; ${next.name} stays read-only`,
  ];
}
