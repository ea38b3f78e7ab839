import { queryJson, sqlLiteral, type SqlTarget } from "../postgres/sql.js";
import { SUBSCRIPTION, SYNC_STATE_SQL } from "../postgres/logical.js";

// What status says of a pgrep migrate under way, read from the primary alone: the slots it publishes
// through (how far each subscriber is behind), or its subscriptions (tables copied, the last message).

const MIGRATION_SQL = `SELECT json_build_object(
  'slots', (SELECT coalesce(json_agg(json_build_object('slot', slot_name, 'behind', pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, 'active', active) ORDER BY slot_name), '[]')
            FROM pg_replication_slots WHERE slot_name LIKE 'pgrep\\_migrate\\_%'),
  'subs', (SELECT coalesce(json_agg(json_build_object('db', d.datname, 'enabled', s.subenabled,
             'ago', (SELECT extract(epoch FROM now() - max(w.last_msg_receipt_time)) FROM pg_stat_subscription w WHERE w.subid = s.oid)) ORDER BY d.datname), '[]')
           FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE s.subname = ${sqlLiteral(SUBSCRIPTION)}))`;

interface Found {
  slots: { slot: string; behind: number; active: boolean }[];
  subs: { db: string; enabled: boolean; ago: number | null }[];
}

/** Lines for status, or none when no migration touches this primary. */
export async function migrationLines(primary: SqlTarget): Promise<string[]> {
  const f = await queryJson<Found>(primary, MIGRATION_SQL, "reading the migration's slots and subscriptions");
  const lines: string[] = [];
  for (const s of f.slots) lines.push(`  publishes through ${s.slot}: the subscriber is ${s.behind} bytes behind${s.active ? "" : " (not connected)"}`);
  for (const s of f.subs) {
    const states = await queryJson<Record<string, number>>(primary, SYNC_STATE_SQL, `reading the subscription of ${s.db}`, s.db);
    const total = Object.values(states).reduce((a, b) => a + b, 0);
    const heard = s.ago === null ? "no apply worker running" : `last message ${s.ago.toFixed(1)} s ago`;
    lines.push(`  ${s.db}: subscribed, ${states.r ?? 0}/${total} tables copied${s.enabled ? "" : " (disabled)"}, ${heard}`);
  }
  return lines.length ? ["", "Migration (pgrep migrate) on the primary:", ...lines] : [];
}
