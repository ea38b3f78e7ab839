import type { AppDatabase, AppsSpec } from "../model/cluster.js";
import { verifierMatches } from "./scram.js";
import { createRoleIfMissing, sqlIdent, sqlLiteral } from "./sql.js";

// Application roles and databases on the primary: how they are read and how they are made. The standbys
// get them by replication. Passwords reach the server only as SCRAM verifiers computed here.

export interface ObservedRole {
  name: string;
  login: boolean;
  superuser: boolean;
  /** undefined: no password known on this machine to compare with. */
  passwordOk: boolean | undefined;
}

export interface ObservedDatabase {
  name: string;
  owner: string;
  encoding: string;
  collate: string;
  ctype: string;
  /** Who has CONNECT ("PUBLIC" for everyone). */
  connect: string[];
}

export interface AppObjects {
  roles: ObservedRole[];
  databases: ObservedDatabase[];
}

/** Every role the inventory names: declared roles, owners and the roles allowed to connect. */
export function namedRoles(apps: AppsSpec): string[] {
  return [...new Set([...apps.roles.map((r) => r.name), ...apps.databases.flatMap((d) => [d.owner, ...(d.connect ?? [])])])];
}

const textArray = (xs: string[]) => `ARRAY[${xs.map(sqlLiteral).join(", ")}]::text[]`;

/** A json expression for observe's query (run as a superuser: pg_authid holds the verifiers). */
export function appObjectsExpression(apps: AppsSpec): string {
  return `json_build_object(
    'roles', (SELECT coalesce(json_agg(json_build_object('name', rolname, 'login', rolcanlogin, 'superuser', rolsuper, 'verifier', rolpassword)), '[]')
      FROM pg_authid WHERE rolname = ANY (${textArray(namedRoles(apps))})),
    'databases', (SELECT coalesce(json_agg(json_build_object('name', datname, 'owner', pg_get_userbyid(datdba),
        'encoding', pg_encoding_to_char(encoding), 'collate', datcollate, 'ctype', datctype,
        'connect', (SELECT coalesce(json_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END), '[]')
          FROM aclexplode(coalesce(datacl, acldefault('d', datdba))) a WHERE a.privilege_type = 'CONNECT'))), '[]')
      FROM pg_database WHERE datname = ANY (${textArray(apps.databases.map((d) => d.name))})))`;
}

/** The verifiers are compared here and dropped: snapshots hold no secrets. */
export function parseAppObjects(raw: unknown, passwords: ReadonlyMap<string, string>): AppObjects {
  const r = raw as { roles: { name: string; login: boolean; superuser: boolean; verifier: string | null }[]; databases: ObservedDatabase[] };
  return {
    roles: r.roles.map((x) => {
      const pw = passwords.get(x.name);
      return { name: x.name, login: x.login, superuser: x.superuser, passwordOk: pw === undefined ? undefined : verifierMatches(x.verifier, pw) };
    }),
    databases: r.databases,
  };
}

/** "C.UTF-8" and "C.utf8" name the same locale. */
export function sameLocale(a: string, b: string): boolean {
  const norm = (s: string) => s.toLowerCase().replace(/utf-?8/, "utf8");
  return norm(a) === norm(b);
}

/** Creates the roles that are missing; gives the others LOGIN and their password (as a verifier). */
export function appRolesSql(names: string[], verifiers: ReadonlyMap<string, string>): string {
  return names
    .map(
      (n) => `${createRoleIfMissing(n)}
ALTER ROLE ${sqlIdent(n)} WITH LOGIN PASSWORD ${sqlLiteral(verifiers.get(n)!)};`,
    )
    .join("\n");
}

/** CREATE DATABASE cannot run in a transaction block: psql's \gexec runs it only when the database is missing. */
export function createDatabaseSql(d: AppDatabase): string {
  const locale = d.locale ? ` LC_COLLATE ${sqlLiteral(d.locale)} LC_CTYPE ${sqlLiteral(d.locale)}` : "";
  const stmt = `CREATE DATABASE ${sqlIdent(d.name)} OWNER ${sqlIdent(d.owner)} ENCODING ${sqlLiteral(d.encoding)}${locale} TEMPLATE template0`;
  return `SELECT ${sqlLiteral(stmt)} WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = ${sqlLiteral(d.name)})\n\\gexec`;
}

/** Only the named roles (and the owner, and superusers) may connect. */
export function connectSql(d: AppDatabase): string {
  return [`REVOKE CONNECT ON DATABASE ${sqlIdent(d.name)} FROM PUBLIC;`, `GRANT CONNECT ON DATABASE ${sqlIdent(d.name)} TO ${d.connect!.map(sqlIdent).join(", ")};`].join("\n");
}

/** True when CONNECT is as the inventory wants: not PUBLIC's, and each named role has it. */
export function connectMatches(d: AppDatabase, observed: ObservedDatabase): boolean {
  if (!d.connect) return true;
  return !observed.connect.includes("PUBLIC") && d.connect.every((r) => r === observed.owner || observed.connect.includes(r));
}
