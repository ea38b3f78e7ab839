import type { Transport } from "../transport/types.js";

// SQL reaches PostgreSQL through psql on the host itself (unix socket, peer authentication), so pgrep needs
// no network path to the database port and no superuser password. The socket directory and port are read
// from postmaster.pid at call time, which is right whatever the configuration says. SQL travels on stdin.

const PSQL_SCRIPT = [
  'f="$1/postmaster.pid"',
  '[ -r "$f" ] || { echo "PostgreSQL is not running (no $f)" >&2; exit 3; }',
  // Line 4 is the port, line 5 the socket directory (read, not sed: no fork on every query).
  '{ read -r _; read -r _; read -r _; read -r p; read -r h; } < "$f"',
  'd=$2; shift 2',
  'exec "$@" -X -q -A -t -v ON_ERROR_STOP=1 -h "${h:-/tmp}" -p "$p" -d "$d"',
].join("\n");

export interface SqlTarget {
  t: Transport;
  dataDir: string;
  psql: string;
  osUser: string;
}

/** psql connected to the server of target.dataDir (database `db`), reading SQL from stdin. */
export function psqlArgv(target: SqlTarget, db = "postgres"): string[] {
  return ["sh", "-c", PSQL_SCRIPT, "sh", target.dataDir, db, target.psql];
}

/** `onStarted`: called once psql runs on the host with the SQL sent (pgrep may then use the wait). */
export async function runSql(target: SqlTarget, sql: string, what = "SQL", onStarted?: () => void, db = "postgres"): Promise<string> {
  const r = await target.t.run(psqlArgv(target, db), {
    user: target.osUser,
    stdin: sql,
    what,
    ...(onStarted ? { onStarted } : {}),
  });
  return r.stdout.trim();
}

export async function queryJson<T>(target: SqlTarget, selectJson: string, what?: string, db = "postgres"): Promise<T> {
  const out = await runSql(target, selectJson, what, undefined, db);
  return JSON.parse(out.split("\n").at(-1) ?? "null") as T;
}

export function sqlLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

export function sqlIdent(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

/**
 * Waits on the server, up to `seconds`, until `condition` (an SQL boolean) holds, polling every 10 ms:
 * one round trip instead of one per poll. It returns either way; what follows checks the outcome.
 */
export function waitUntilSql(condition: string, seconds: number): string {
  return `DO $pgrep$ BEGIN FOR i IN 1..${Math.ceil(seconds * 100)} LOOP EXIT WHEN ${condition}; PERFORM pg_sleep(0.01); END LOOP; END $pgrep$;`;
}

/** A role created when it does not exist yet (CREATE ROLE has no IF NOT EXISTS); its attributes come after. */
export function createRoleIfMissing(name: string): string {
  return `DO $pgrep$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${sqlLiteral(name)}) THEN CREATE ROLE ${sqlIdent(name)}; END IF;
END $pgrep$;`;
}

const CLIENT_SCRIPT = [
  'f="$1/postmaster.pid"',
  '[ -r "$f" ] || { echo "PostgreSQL is not running (no $f)" >&2; exit 3; }',
  '{ read -r _; read -r _; read -r _; read -r p; read -r h; } < "$f"',
  't=$2; shift 2',
  'exec "$t" -h "${h:-/tmp}" -p "$p" "$@"',
].join("\n");

/** Another client program of the server's (pg_dump, pg_dumpall) connected like psql, with its own arguments. */
export function clientArgv(target: SqlTarget, tool: string, args: readonly string[]): string[] {
  return ["sh", "-c", CLIENT_SCRIPT, "sh", target.dataDir, tool, ...args];
}
