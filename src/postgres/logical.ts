import { sqlIdent, sqlLiteral } from "./sql.js";

// SQL for moving a cluster onto other hosts by logical replication (pgrep migrate): what the publisher
// has, the publication and subscription of each database, and the checks of a cut-over. Pure text.

/** The role a subscriber logs in as on its publisher; made for the migration and dropped after it. */
export const MIGRATE_ROLE = "pgrep_migrate";
/** The publication in every database of the publishing side, and the subscription of the other side. */
export const PUBLICATION = "pgrep_migrate";
export const SUBSCRIPTION = "pgrep_migrate";

/** The slot of one database's subscription: by the publisher database's oid (its name may have a '-'). */
export function slotName(direction: "forward" | "back", dbOid: number): string {
  return `pgrep_migrate_${direction}_${dbOid}`;
}

export interface DatabaseFacts {
  name: string;
  oid: number;
  owner: string;
  encoding: string;
  collate: string;
  ctype: string;
}

/** Databases that take connections, templates aside. */
export const DATABASES_SQL = `SELECT coalesce(json_agg(json_build_object('name', datname, 'oid', oid::int, 'owner', pg_get_userbyid(datdba), 'encoding', pg_encoding_to_char(encoding), 'collate', datcollate, 'ctype', datctype) ORDER BY datname), '[]') FROM pg_database WHERE datallowconn AND NOT datistemplate`;

export interface TableFacts {
  schema: string;
  name: string;
  /** The primary key's columns in key order; null when it has none. */
  key: string[] | null;
  /** The key is one column of an integer type: its chunks are ranges of it, hashed without a sort. */
  intKey: boolean;
  unlogged: boolean;
}

export interface SchemaFacts {
  tables: TableFacts[];
  schemas: string[];
  largeObjects: number;
}

/** Ordinary tables and partitions outside the catalogs (what FOR ALL TABLES publishes), by name. */
export const SCHEMA_SQL = `SELECT json_build_object(
  'tables', (SELECT coalesce(json_agg(json_build_object('schema', n.nspname, 'name', c.relname, 'unlogged', c.relpersistence = 'u',
      'key', (SELECT json_agg(a.attname ORDER BY k.i) FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(att, i)
              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.att WHERE x.indrelid = c.oid AND x.indisprimary),
      'intKey', (SELECT x.indnatts = 1 AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] WHERE x.indrelid = c.oid AND x.indisprimary))
    ORDER BY n.nspname, c.relname), '[]')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')),
  'schemas', (SELECT coalesce(json_agg(nspname ORDER BY nspname), '[]') FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'),
  'largeObjects', (SELECT count(*) FROM pg_largeobject_metadata))`;

export function qualified(t: { schema: string; name: string }): string {
  return `${sqlIdent(t.schema)}.${sqlIdent(t.name)}`;
}

/** What the subscriber's role may read on the publisher: the initial copy reads every table. */
export function grantReadSql(role: string, schemas: readonly string[]): string {
  return schemas.map((s) => `GRANT USAGE ON SCHEMA ${sqlIdent(s)} TO ${sqlIdent(role)}; GRANT SELECT ON ALL TABLES IN SCHEMA ${sqlIdent(s)} TO ${sqlIdent(role)};`).join("\n");
}

export function revokeReadSql(role: string, schemas: readonly string[]): string {
  return schemas.map((s) => `REVOKE SELECT ON ALL TABLES IN SCHEMA ${sqlIdent(s)} FROM ${sqlIdent(role)}; REVOKE USAGE ON SCHEMA ${sqlIdent(s)} FROM ${sqlIdent(role)};`).join("\n");
}

export const CREATE_PUBLICATION_SQL = `DO $pgrep$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = ${sqlLiteral(PUBLICATION)}) THEN CREATE PUBLICATION ${sqlIdent(PUBLICATION)} FOR ALL TABLES; END IF;
END $pgrep$;`;

/**
 * The subscription of one database (CREATE SUBSCRIPTION cannot run inside a DO block or a transaction:
 * the caller checks it is absent). "copy": every table copied first, then kept up to date. "prepared":
 * the table list fetched, nothing copied, no slot made and not enabled: the way back of a cut-over, made
 * before the pause; its slot is made in the pause (createSlotSql) and it is enabled after it.
 * The password comes from the passfile; it is never in the catalog.
 */
export function createSubscriptionSql(conn: { host: string; port: number; dbname: string; passfile: string }, slot: string, mode: "copy" | "prepared"): string {
  const info = `host=${conn.host} port=${conn.port} dbname='${conn.dbname.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}' user=${MIGRATE_ROLE} passfile=${conn.passfile} application_name=${slot}`;
  const options = mode === "copy" ? "copy_data = true" : "copy_data = false, create_slot = false, enabled = false";
  return `SET default_transaction_read_only = off;\nCREATE SUBSCRIPTION ${sqlIdent(SUBSCRIPTION)} CONNECTION ${sqlLiteral(info)} PUBLICATION ${sqlIdent(PUBLICATION)} WITH (slot_name = ${sqlLiteral(slot)}, ${options});`;
}

/** A prepared subscription's slot, made on the publisher in the subscription's database: from here on, nothing is missed. */
export function createSlotSql(slot: string): string {
  return `SELECT count(pg_create_logical_replication_slot(${sqlLiteral(slot)}, 'pgoutput')) FROM (SELECT 1) x WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(slot)});`;
}

export const ENABLE_SUBSCRIPTION_SQL = `SET default_transaction_read_only = off;\nALTER SUBSCRIPTION ${sqlIdent(SUBSCRIPTION)} ENABLE;`;
export const DISABLE_SUBSCRIPTION_SQL = `SET default_transaction_read_only = off;\nALTER SUBSCRIPTION ${sqlIdent(SUBSCRIPTION)} DISABLE;`;

/** A prepared subscription dropped without touching the publisher (it has no slot there yet). */
export const DROP_PREPARED_SQL = `SET default_transaction_read_only = off;
ALTER SUBSCRIPTION ${sqlIdent(SUBSCRIPTION)} DISABLE;
ALTER SUBSCRIPTION ${sqlIdent(SUBSCRIPTION)} SET (slot_name = NONE);
DROP SUBSCRIPTION ${sqlIdent(SUBSCRIPTION)};`;

/** Dropped with its slot on the publisher (DROP SUBSCRIPTION connects there to drop it). */
export const DROP_SUBSCRIPTION_SQL = `SET default_transaction_read_only = off;\nDROP SUBSCRIPTION IF EXISTS ${sqlIdent(SUBSCRIPTION)};`;

/** This database's subscription: "none", "enabled" or "disabled". */
export const SUBSCRIPTION_STATE_SQL = `SELECT coalesce((SELECT CASE WHEN subenabled THEN 'enabled' ELSE 'disabled' END FROM pg_subscription WHERE subname = ${sqlLiteral(SUBSCRIPTION)} AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())), 'none')`;

/** Tables of this database's subscription by state: i(nit), d(ata copy), f/s (sync), r(eady). */
export const SYNC_STATE_SQL = `SELECT coalesce(json_object_agg(s, n), '{}') FROM (SELECT srsubstate::text s, count(*) n FROM pg_subscription_rel r JOIN pg_subscription u ON u.oid = r.srsubid WHERE u.subname = ${sqlLiteral(SUBSCRIPTION)} AND u.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY 1) x`;

/** On the publisher: how far each migration slot's subscriber has confirmed, against the WAL's end. */
export const SLOTS_SQL = `SELECT coalesce(json_object_agg(slot_name, json_build_object('confirmed', confirmed_flush_lsn::text, 'behind', pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, 'active', active)), '{}') FROM pg_replication_slots WHERE slot_name LIKE 'pgrep\\_migrate\\_%'`;

/**
 * Writes refused on a whole server: read-only by default for every new session, and every client
 * session there now ended (its transaction rolled back, never acknowledged). Replication is not affected.
 */
export const REFUSE_WRITES_SQL = `ALTER SYSTEM SET default_transaction_read_only = on;
SELECT pg_reload_conf();
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid();`;

export const ALLOW_WRITES_SQL = `SET default_transaction_read_only = off;
ALTER SYSTEM RESET default_transaction_read_only;
SELECT pg_reload_conf();`;

/** Every sequence's state, to be set exactly on the other side. */
export const SEQUENCES_SQL = `SELECT coalesce(json_agg(json_build_array(format('%I.%I', schemaname, sequencename), last_value::text) ORDER BY 1), '[]') FROM pg_sequences WHERE last_value IS NOT NULL`;

export function setSequencesSql(values: readonly [string, string][]): string {
  return ["SET default_transaction_read_only = off;", ...values.map(([name, v]) => `SELECT setval(${sqlLiteral(name)}, ${sqlLiteral(v)}::bigint, true);`)].join("\n");
}

/** Rows in each chunk (an integer key: key values in each range), so a mismatch is named by where it is. */
export const CHUNK_ROWS = 50_000;

/**
 * A table's rows counted and hashed in chunks, one line per chunk: "n count hash". An integer key's chunks
 * are ranges of it (key / CHUNK_ROWS), each the sum of its rows' hashes: no sort, so the server streams the
 * table once, and the rows' order within a chunk does not matter (the key makes each row one of a kind).
 * Other keys: chunks of CHUNK_ROWS rows in key order, the md5 of their rows' md5s in that order. Either
 * way neither side holds the table. `hash64`: hashtextextended on both sides (else hashtext).
 */
export function tableHashSql(t: TableFacts, hash64: boolean): string {
  if (t.intKey) {
    const k = sqlIdent(t.key![0]!);
    // sum(int8) adds in 128-bit integers: casting each hash to numeric first cost 15% more.
    const h = hash64 ? "hashtextextended(t::text, 0)" : "hashtext(t::text)::bigint";
    return `SET enable_sort = off;
SELECT coalesce(string_agg(c::text || ' ' || n::text || ' ' || h, E'\n' ORDER BY c), '') FROM (
  SELECT ${k} / ${CHUNK_ROWS} c, count(*) n, sum(${h})::text h FROM ${qualified(t)} t GROUP BY 1) y;`;
  }
  const key = t.key!.map(sqlIdent).join(", ");
  return `SELECT coalesce(string_agg(c::text || ' ' || n::text || ' ' || h, E'\n' ORDER BY c), '') FROM (
  SELECT c, count(*) n, md5(string_agg(r, '' ORDER BY o)) h FROM (
    SELECT (row_number() OVER (ORDER BY ${key}) - 1) / ${CHUNK_ROWS} c, row_number() OVER (ORDER BY ${key}) o, md5(t::text) r FROM ${qualified(t)} t) x GROUP BY c) y`;
}
