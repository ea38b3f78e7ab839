import { randomBytes } from "node:crypto";
import type { ReachableHost } from "../cluster/state.js";
import { lastLines, PgrepError } from "../errors.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import { blockMarkers, mergePgpass } from "../postgres/files.js";
import {
  ALLOW_WRITES_SQL,
  CHUNK_ROWS,
  CREATE_PUBLICATION_SQL,
  createSubscriptionSql,
  DATABASES_SQL,
  DROP_SUBSCRIPTION_SQL,
  grantReadSql,
  SUBSCRIPTION_STATE_SQL,
  createSlotSql,
  DISABLE_SUBSCRIPTION_SQL,
  DROP_PREPARED_SQL,
  ENABLE_SUBSCRIPTION_SQL,
  MIGRATE_ROLE,
  PUBLICATION,
  qualified,
  REFUSE_WRITES_SQL,
  revokeReadSql,
  SCHEMA_SQL,
  SEQUENCES_SQL,
  setSequencesSql,
  SLOTS_SQL,
  slotName,
  SYNC_STATE_SQL,
  tableHashSql,
  type DatabaseFacts,
  type SchemaFacts,
  type TableFacts,
} from "../postgres/logical.js";
import { scramVerifier } from "../postgres/scram.js";
import { clientArgv, createRoleIfMissing, psqlArgv, queryJson, runSql, sqlIdent, sqlLiteral, type SqlTarget } from "../postgres/sql.js";
import { readFileText, writeFileAtomic } from "../transport/files.js";
import { fileTarget } from "../plan/steps.js";
import { sqlTarget } from "./context.js";

// The steps of pgrep migrate on the two primaries: one side publishes, the other subscribes. Each step
// can run again: what exists is left as it is.

/** One cluster's primary, running and writable or read-only by pgrep, as a migration uses it. */
export interface Side {
  spec: ClusterSpec;
  host: HostSpec;
  state: ReachableHost;
  sql: SqlTarget;
}

export function sideOf(spec: ClusterSpec, state: ReachableHost): Side {
  return { spec, host: spec.primary, state, sql: sqlTarget(spec.primary, state) };
}

const WRITABLE = "SET default_transaction_read_only = off;\n";
const MARKERS = { begin: "# BEGIN pgrep migration", end: "# END pgrep migration" };

export const readDatabases = (s: Side) => queryJson<DatabaseFacts[]>(s.sql, DATABASES_SQL, "reading the databases");
export const readSchema = (s: Side, db: string) => queryJson<SchemaFacts>(s.sql, SCHEMA_SQL, `reading the tables of ${db}`, db);

/** The tables and schemas of each database, by name. */
export async function readSchemas(s: Side, dbs: readonly DatabaseFacts[]): Promise<Map<string, SchemaFacts>> {
  return new Map(await Promise.all(dbs.map(async (d) => [d.name, await readSchema(s, d.name)] as const)));
}

/** The side's own facts (its oids) of the databases named in `dbs`: the other side's slots are named by them. */
export async function sameDatabases(s: Side, dbs: readonly DatabaseFacts[]): Promise<DatabaseFacts[]> {
  return (await readDatabases(s)).filter((x) => dbs.some((y) => y.name === x.name));
}

/** Runs a client program of the side's major (pg_dump, pg_dumpall) as its OS user; its output. */
async function client(s: Side, tool: string, args: string[]): Promise<string> {
  const r = await s.state.transport.run(clientArgv(s.sql, `${s.state.layout.binDir}/${tool}`, args), { user: s.host.pg.osUser, what: `${tool} on ${s.host.name}` });
  return r.stdout;
}

/**
 * The roles `from` has and `to` lacks, with their attributes, passwords (as stored) and memberships.
 * Roles `to` already has (its own applications', its replication role) keep what its inventory gave them.
 */
export async function copyRoles(from: Side, to: Side): Promise<string[]> {
  const have = new Set(await queryJson<string[]>(to.sql, "SELECT json_agg(rolname) FROM pg_roles", "reading the roles"));
  have.add(MIGRATE_ROLE);
  const dump = await client(from, "pg_dumpall", ["--roles-only"]);
  const roleOf = (line: string) => /^(?:CREATE|ALTER|COMMENT ON) ROLE ("(?:[^"]|"")+"|[^\s;]+)/.exec(line)?.[1];
  const unquote = (n: string) => (n.startsWith('"') ? n.slice(1, -1).replaceAll('""', '"') : n);
  const added = new Set<string>();
  const lines = dump.split("\n").filter((l) => {
    const r = roleOf(l);
    if (r === undefined) return !/^(CREATE|ALTER|COMMENT ON) ROLE/.test(l);
    if (have.has(unquote(r))) return false;
    added.add(unquote(r));
    return true;
  });
  // Memberships name roles that all exist there now (those it had, those just made).
  if (added.size) await runSql(to.sql, WRITABLE + lines.join("\n"), `creating the roles of ${from.spec.name} on ${to.host.name}`);
  return [...added];
}

/** The database made on `to` as `from` has it, when missing; false when it has tables already. */
export async function ensureDatabase(to: Side, d: DatabaseFacts): Promise<"made" | "empty" | "has-tables"> {
  const exists = (await runSql(to.sql, `SELECT count(*) FROM pg_database WHERE datname = ${sqlLiteral(d.name)}`)) === "1";
  if (!exists) {
    await runSql(to.sql, `${WRITABLE}CREATE DATABASE ${sqlIdent(d.name)} OWNER ${sqlIdent(d.owner)} ENCODING ${sqlLiteral(d.encoding)} LC_COLLATE ${sqlLiteral(d.collate)} LC_CTYPE ${sqlLiteral(d.ctype)} TEMPLATE template0;`, `creating database ${d.name} on ${to.host.name}`);
    return "made";
  }
  const tables = await readSchema(to, d.name);
  return tables.tables.length ? "has-tables" : "empty";
}

/** The schema of one database (no data, no publications or subscriptions), dumped on `from`, restored on `to`. */
export async function copySchema(from: Side, to: Side, db: string): Promise<void> {
  const dump = await client(from, "pg_dump", ["--schema-only", "--no-publications", "--no-subscriptions", "-d", db]);
  await runSql(to.sql, WRITABLE + dump, `restoring the schema of ${db} on ${to.host.name}`, undefined, db);
}

export function newMigratePassword(): string {
  return randomBytes(24).toString("base64url");
}

/**
 * What the subscriber needs on the publisher: its role (a SCRAM verifier; the password never reaches the
 * server), read access to every table, the publication in every database, and a pg_hba block for the
 * subscriber's addresses (outside pgrep's own block, which setup rewrites; before it, so that it matches).
 */
export async function openAccess(pub: Side, subscriberAddresses: readonly string[], password: string, schemas: ReadonlyMap<string, SchemaFacts>): Promise<void> {
  await runSql(pub.sql, `${WRITABLE}${createRoleIfMissing(MIGRATE_ROLE)}\nALTER ROLE ${sqlIdent(MIGRATE_ROLE)} WITH LOGIN REPLICATION PASSWORD ${sqlLiteral(scramVerifier(password))};`, `the role ${MIGRATE_ROLE} on ${pub.host.name}`);
  for (const [db, facts] of schemas) await runSql(pub.sql, `${WRITABLE}${grantReadSql(MIGRATE_ROLE, facts.schemas)}\n${CREATE_PUBLICATION_SQL}`, `the publication of ${db} on ${pub.host.name}`, undefined, db);
  const lines = [MARKERS.begin, `# pgrep migrate: the other cluster's primary reads this one by logical replication. Removed when the migration ends.`, ...subscriberAddresses.map((a) => `host    all    ${MIGRATE_ROLE}    ${a.includes(":") ? `${a}/128` : `${a}/32`}    scram-sha-256`), MARKERS.end];
  await editHba(pub, (text) => withMigrationBlock(text, lines, blockMarkers(pub.spec.name).begin));
}

/** The publisher's side of a migration removed: publications, grants, the role, the pg_hba block. */
export async function closeAccess(pub: Side, schemas: ReadonlyMap<string, SchemaFacts>): Promise<void> {
  const role = (await runSql(pub.sql, `SELECT count(*) FROM pg_roles WHERE rolname = ${sqlLiteral(MIGRATE_ROLE)}`)) === "1";
  for (const [db, facts] of schemas) {
    await runSql(pub.sql, `${WRITABLE}DROP PUBLICATION IF EXISTS ${sqlIdent(PUBLICATION)};\n${role ? revokeReadSql(MIGRATE_ROLE, facts.schemas) : ""}`, `the publication of ${db} on ${pub.host.name}`, undefined, db);
  }
  await runSql(pub.sql, `${WRITABLE}DROP ROLE IF EXISTS ${sqlIdent(MIGRATE_ROLE)};`, `dropping ${MIGRATE_ROLE} on ${pub.host.name}`);
  await editHba(pub, withoutMigrationBlock);
}

/** The migration's block in place of an earlier one, else right above pgrep's own block (or the first rule). */
function withMigrationBlock(text: string, block: string[], pgrepBegin: string): string {
  const l = withoutMigrationBlock(text).replace(/\n$/, "").split("\n");
  const ours = l.indexOf(pgrepBegin);
  const first = l.findIndex((x) => x.trim() !== "" && !x.trim().startsWith("#"));
  const at = ours !== -1 ? ours : first !== -1 ? first : l.length;
  return `${[...l.slice(0, at), ...block, ...l.slice(at)].join("\n")}\n`;
}

function withoutMigrationBlock(text: string): string {
  const l = text.split("\n");
  const b = l.indexOf(MARKERS.begin);
  const e = l.indexOf(MARKERS.end);
  return b !== -1 && e > b ? [...l.slice(0, b), ...l.slice(e + 1)].join("\n") : text;
}

async function editHba(s: Side, edit: (text: string) => string): Promise<void> {
  const { transport: t, layout } = s.state;
  const before = (await readFileText(t, layout.hbaFile, layout.admin)) ?? "";
  const after = edit(before);
  if (after === before) return;
  await writeFileAtomic(t, layout.hbaFile, after, { owner: fileTarget(s.host, s.state, layout.hbaFile, 0o640).owner, mode: 0o640, asUser: layout.admin });
  await runSql(s.sql, "SELECT pg_reload_conf();", `reloading ${s.host.name}`);
}

/** The subscriber's .pgpass gets (or loses, password undefined) the line for the publisher. */
export async function setPassfile(sub: Side, pub: Side, password: string | undefined): Promise<void> {
  const { transport: t, layout } = sub.state;
  const before = (await readFileText(t, layout.passfile, layout.admin)) ?? "";
  const others = before.split("\n").filter((l) => l !== "" && !l.includes(`:${MIGRATE_ROLE}:`));
  const kept = others.length ? `${others.join("\n")}\n` : "";
  const after = password === undefined ? kept : mergePgpass(kept, [{ host: pub.host.address, port: pub.host.pg.port, user: MIGRATE_ROLE, password }]);
  if (after !== before) await writeFileAtomic(t, layout.passfile, after, { owner: fileTarget(sub.host, sub.state, layout.passfile, 0o600).owner, mode: 0o600, asUser: layout.admin });
}

/** Subscribes `sub`'s database to `pub`'s, unless it already is (see createSubscriptionSql for `mode`). */
export async function subscribe(sub: Side, pub: Side, d: DatabaseFacts, direction: "forward" | "back", mode: "copy" | "prepared"): Promise<void> {
  if ((await subscriptionState(sub, d.name)) !== "none") return;
  const conn = { host: pub.host.address, port: pub.host.pg.port, dbname: d.name, passfile: sub.state.layout.passfile };
  await runSql(sub.sql, createSubscriptionSql(conn, slotName(direction, d.oid), mode), `subscribing ${d.name} on ${sub.host.name} to ${pub.host.name}`, undefined, d.name);
}

/** Ends the subscription and drops its slot on the publisher. */
export async function unsubscribe(sub: Side, db: string): Promise<void> {
  await runSql(sub.sql, DROP_SUBSCRIPTION_SQL, `ending the subscription of ${db} on ${sub.host.name}`, undefined, db);
}

/** A prepared subscription (no slot yet) removed: the way back of a cut-over that did not happen. */
export async function dropPrepared(sub: Side, db: string): Promise<void> {
  if ((await subscriptionState(sub, db)) !== "none") await runSql(sub.sql, DROP_PREPARED_SQL, `removing the prepared subscription of ${db} on ${sub.host.name}`, undefined, db);
}

export async function setSubscriptionEnabled(sub: Side, db: string, enabled: boolean): Promise<void> {
  await runSql(sub.sql, enabled ? ENABLE_SUBSCRIPTION_SQL : DISABLE_SUBSCRIPTION_SQL, `${enabled ? "enabling" : "disabling"} the subscription of ${db} on ${sub.host.name}`, undefined, db);
}

/** The slot of a prepared subscription, made on its publisher (in the database it replicates). */
export async function createSlot(pub: Side, d: DatabaseFacts, direction: "forward" | "back"): Promise<void> {
  await runSql(pub.sql, `SET default_transaction_read_only = off;\n${createSlotSql(slotName(direction, d.oid))}`, `making the slot for ${d.name} on ${pub.host.name}`, undefined, d.name);
}

/** A slot made for a prepared subscription, dropped again (a cut-over that did not happen). */
export async function dropSlot(pub: Side, d: DatabaseFacts, direction: "forward" | "back"): Promise<void> {
  const slot = sqlLiteral(slotName(direction, d.oid));
  await runSql(pub.sql, `SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = ${slot};`, `dropping the slot for ${d.name} on ${pub.host.name}`);
}

export async function subscriptionState(s: Side, db: string): Promise<"none" | "enabled" | "disabled"> {
  return (await runSql(s.sql, SUBSCRIPTION_STATE_SQL, "reading subscriptions", undefined, db)) as "none" | "enabled" | "disabled";
}

/** Whether the database has an enabled subscription of the migration. */
export async function hasSubscription(s: Side, db: string): Promise<boolean> {
  return (await subscriptionState(s, db)) === "enabled";
}

/**
 * VACUUM ANALYZE of a database the initial copy filled: the rows' hint bits and the visibility map set
 * now, not by the first read — the cut-over's check, while writes are refused (with checksums on,
 * setting hint bits also writes every page to the WAL) — and statistics for the planner.
 */
export async function vacuumAnalyze(s: Side, db: string): Promise<void> {
  await runSql(s.sql, "SET default_transaction_read_only = off;\nVACUUM (ANALYZE);", `VACUUM ANALYZE of ${db} on ${s.host.name}`, undefined, db);
}

/** Tables of the database's subscription by state letter (r: ready). */
export const syncState = (sub: Side, db: string) => queryJson<Record<string, number>>(sub.sql, SYNC_STATE_SQL, `reading the subscription of ${db}`, db);

export const slotsOf = (pub: Side) => queryJson<Record<string, { confirmed: string; behind: number; active: boolean }>>(pub.sql, SLOTS_SQL, "reading the migration's slots");

export async function refuseWrites(s: Side): Promise<void> {
  await runSql(s.sql, REFUSE_WRITES_SQL, `refusing writes on ${s.host.name}`);
}

export async function allowWrites(s: Side): Promise<void> {
  await runSql(s.sql, ALLOW_WRITES_SQL, `taking writes on ${s.host.name}`);
}

/** The end of the publisher's WAL now. */
export const walEnd = (s: Side) => runSql(s.sql, "SELECT pg_current_wal_lsn()", "reading the WAL position");

/**
 * Waits until every migration slot on `pub` has confirmed `lsn` (its subscriber applied everything up to
 * there), polling on the server; false when `seconds` pass first.
 */
export async function waitConfirmed(pub: Side, slots: readonly string[], lsn: string, seconds: number): Promise<boolean> {
  const names = slots.map(sqlLiteral).join(", ");
  const cond = `(SELECT count(*) FROM pg_replication_slots WHERE slot_name IN (${names}) AND confirmed_flush_lsn >= ${sqlLiteral(lsn)}::pg_lsn) = ${slots.length}`;
  const out = await runSql(pub.sql, `DO $pgrep$ BEGIN FOR i IN 1..${Math.ceil(seconds * 100)} LOOP EXIT WHEN ${cond}; PERFORM pg_sleep(0.01); END LOOP; END $pgrep$;\nSELECT ${cond};`, "waiting for the subscriber to apply everything");
  return out.split("\n").at(-1) === "t";
}

/** Every sequence of `db` set on `to` to the value it has on `from`; how many. */
export async function copySequences(from: Side, to: Side, db: string): Promise<number> {
  const values = await queryJson<[string, string][]>(from.sql, SEQUENCES_SQL, `reading the sequences of ${db}`, db);
  if (values.length) await runSql(to.sql, setSequencesSql(values), `setting the sequences of ${db} on ${to.host.name}`, undefined, db);
  return values.length;
}

export interface TableCheck {
  table: string;
  rows: number;
  /** Where the two sides differ ("" when they do not). */
  differs: string;
}

/**
 * Every table of `db` counted and hashed in chunks (see tableHashSql), on both sides at once; with
 * `snapshots`, each side as its held snapshot saw it.
 */
export async function verifyTables(a: Side, b: Side, db: string, tables: readonly TableFacts[], snapshots?: { a: string; b: string }): Promise<TableCheck[]> {
  const hash64 = a.state.caps.hasHashExtended && b.state.caps.hasHashExtended;
  const inSnapshot = (sql: string, id: string | undefined) => (id ? `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSET TRANSACTION SNAPSHOT ${sqlLiteral(id)};\n${sql};\nCOMMIT;` : sql);
  const checks: TableCheck[] = [];
  for (const t of tables) {
    const sql = tableHashSql(t, hash64);
    const [x, y] = await Promise.all([runSql(a.sql, inSnapshot(sql, snapshots?.a), `hashing ${t.name}`, undefined, db), runSql(b.sql, inSnapshot(sql, snapshots?.b), `hashing ${t.name}`, undefined, db)]);
    const chunks = (s: string) => new Map(s.split("\n").filter(Boolean).map((l) => l.split(" ")).map(([c, n, h]) => [Number(c), { n: Number(n), h }] as const));
    const ca = chunks(x);
    const cb = chunks(y);
    const count = (m: typeof ca) => [...m.values()].reduce((n, c) => n + c.n, 0);
    let differs = "";
    if (count(ca) !== count(cb)) differs = `${count(ca)} rows on ${a.host.name}, ${count(cb)} on ${b.host.name}`;
    else {
      const c = [...new Set([...ca.keys(), ...cb.keys()])].sort((p, q) => p - q).find((k) => ca.get(k)?.h !== cb.get(k)?.h);
      if (c !== undefined) differs = t.intKey ? `the rows with ${t.key![0]} ${keyRange(c)} differ` : `rows ${c * CHUNK_ROWS + 1}–${c * CHUNK_ROWS + (ca.get(c)?.n ?? 0)} in key order differ`;
    }
    checks.push({ table: `${db}: ${qualified(t)}`, rows: count(ca), differs });
  }
  return checks;
}

/** The key values of an integer key's chunk c (key / CHUNK_ROWS rounds toward zero: chunk 0 spans both signs). */
function keyRange(c: number): string {
  const n = CHUNK_ROWS;
  const [lo, hi] = c > 0 ? [c * n, c * n + n - 1] : c < 0 ? [c * n - n + 1, c * n] : [-(n - 1), n - 1];
  return `from ${lo} to ${hi}`;
}

/** A migration step's failure, said with what state the two clusters are in. */
export function migrateError(e: unknown, state: string): PgrepError {
  return new PgrepError(`${(e as Error).message}\n${state}`, { cause: e });
}

/** A snapshot exported and held open on a side (pg_export_snapshot): what it saw, read later by other sessions. */
export interface HeldSnapshot {
  id: string;
  release(): Promise<void>;
}

export async function holdSnapshot(s: Side, db: string, timeoutMs = 60_000): Promise<HeldSnapshot> {
  let out = "";
  let found: (id: string) => void = () => {};
  const got = new Promise<string>((resolve) => (found = resolve));
  const p = s.state.transport.spawn(psqlArgv(s.sql, db), {
    user: s.host.pg.osUser,
    onOutput: (chunk, stream) => {
      if (stream !== "stdout") return;
      out += chunk;
      const m = /PGREP_SNAPSHOT (\S+)\n/.exec(out);
      if (m) found(m[1]!);
    },
  });
  p.write("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT 'PGREP_SNAPSHOT ' || pg_export_snapshot();\n");
  let timer: NodeJS.Timeout | undefined;
  const failed = Promise.race([
    p.done.then((r) => `psql ended: ${lastLines(r.stderr || r.stdout, 3)}`),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no answer within ${timeoutMs / 1000} s`), timeoutMs))),
  ]);
  const id = await Promise.race([got, failed.then((why) => Promise.reject(new PgrepError(`${s.host.name}: exporting a snapshot of ${db}: ${why}`)))]).finally(() => clearTimeout(timer));
  return {
    id,
    release: async () => {
      p.write("COMMIT;\n");
      p.end();
      await p.done;
    },
  };
}

/** Whether the side refuses writes by default (pgrep migrate's ALTER SYSTEM default_transaction_read_only). */
export async function refusesWrites(s: Side): Promise<boolean> {
  return (await runSql(s.sql, "SELECT current_setting('default_transaction_read_only')", `reading ${s.host.name}'s default`)) === "on";
}
