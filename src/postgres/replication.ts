import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import type { Layout } from "./layout.js";
import { conninfo } from "./files.js";
import { sqlLiteral, waitUntilSql } from "./sql.js";

// Slots and synchronous standbys as the inventory wants them for its current topology.

/** The physical slot a standby streams through on its upstream. */
export function slotName(host: string): string {
  return `pgrep_${host.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, 63);
}

export const SLOT_PREFIX = "pgrep_";

/** Creates the physical slots that do not exist yet; immediately_reserve: WAL is kept from now on. */
export function createSlotsSql(names: readonly string[]): string {
  return names.map((n) => `SELECT pg_create_physical_replication_slot(${sqlLiteral(n)}, true) WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(n)});`).join("\n");
}

/**
 * SQL that ends the walsenders serving `host` (by its slot or its application_name) and waits up to
 * `seconds` for them to be gone, after first waiting up to `graceSeconds` for them to end by themselves.
 * Prints how many it had to end, then how many are left (0: its slot is free). One round trip: it runs
 * while pgrep waits on the host.
 */
export function endWalsendersSql(host: string, graceSeconds: number, seconds: number): string {
  const held = `SELECT pid FROM pg_stat_replication WHERE application_name = ${sqlLiteral(host)} UNION SELECT active_pid FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(slotName(host))} AND active_pid IS NOT NULL`;
  const wait = (s: number) => waitUntilSql(`NOT EXISTS (${held})`, s);
  return [...(graceSeconds > 0 ? [wait(graceSeconds)] : []), `SELECT count(pg_terminate_backend(pid)) FROM (${held}) h;`, wait(seconds), `SELECT count(*) FROM (${held}) h;`].join("\n");
}

/**
 * Waits up to `seconds` for a slot to be free, then drops it. Prints 1 when dropped, 0 when it was still in
 * use (or gone already: then 0 too, and nothing holds WAL).
 */
export function dropSlotWhenFreeSql(slot: string, seconds: number): string {
  const busy = `SELECT FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(slot)} AND active`;
  return `${waitUntilSql(`NOT EXISTS (${busy})`, seconds)}
SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(slot)} AND NOT active;
SELECT count(*) FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(slot)};`;
}

/** Drops the slots, only when inactive: a slot in use belongs to a standby that still streams. */
export function dropSlotsSql(names: readonly string[]): string {
  return names.map((n) => `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(n)} AND NOT active;`).join("\n");
}

/** Slots `host` should have: one per standby that streams from it. */
export function wantedSlots(spec: ClusterSpec, host: HostSpec): string[] {
  if (!spec.slots) return [];
  return spec.hosts.filter((h) => h.role === "standby" && h.upstream === host.name).map((h) => slotName(h.name));
}

/**
 * synchronous_standby_names for the current primary: only names that are its standbys now (after a
 * promotion the new primary must never wait for itself, which would stop every commit), and never more
 * required than there are.
 */
export function synchronousStandbyNames(spec: ClusterSpec): string | undefined {
  const s = spec.synchronous;
  if (!s) return undefined;
  const names = s.names.filter((n) => spec.hosts.some((h) => h.name === n && h.role === "standby" && h.upstream === spec.primary.name));
  if (!names.length) return undefined;
  return `${s.method} ${Math.min(s.num, names.length)} (${names.map((n) => `"${n}"`).join(", ")})`;
}

/** How many hops `host` is from the primary: 1 for its standbys, 2 for standbys of those (cascading)… */
export function hopsFromPrimary(spec: ClusterSpec, host: HostSpec): number {
  let hops = 0;
  for (let h: HostSpec | undefined = host; h && h.role === "standby" && hops <= spec.hosts.length; h = spec.hosts.find((x) => x.name === h!.upstream)) hops++;
  return hops;
}

/**
 * How `from` (its layout) connects to `to` as the replication user: walreceiver, pg_basebackup, pg_rewind.
 * With replication.tls the server's certificate is verified against the cluster's CA.
 */
export function replicationConninfo(spec: ClusterSpec, from: Layout, to: HostSpec, extra: { dbname?: string; application_name?: string }): string {
  const tls = spec.tls ? { sslmode: spec.tls.sslmode, sslrootcert: `${from.tlsDir}/ca.crt` } : {};
  return conninfo({ host: to.address, port: to.pg.port, user: spec.replicationUser, dbname: extra.dbname, passfile: from.passfile, application_name: extra.application_name, ...tls });
}

/**
 * max_wal_senders and max_replication_slots, the same on every host (a standby needs at least its
 * primary's): PostgreSQL's 10, or room for every other host to copy from this one at once (a
 * pg_basebackup -X stream holds two senders) and then stream from it, with two to spare.
 */
export function replicationCapacity(spec: ClusterSpec): { walSenders: number; slots: number } {
  const others = spec.hosts.length - 1;
  return { walSenders: Math.max(10, 2 * others + 2), slots: Math.max(10, others + 2) };
}
