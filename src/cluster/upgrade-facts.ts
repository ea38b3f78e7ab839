import { PgrepError } from "../errors.js";
import type { HostSpec } from "../model/cluster.js";
import { queryJson, runSql, type SqlTarget } from "../postgres/sql.js";
import type { OldClusterFacts } from "../postgres/upgrade.js";
import type { Capabilities } from "../postgres/versions.js";
import { parseKv } from "./probe.sh.js";
import type { ReachableHost } from "./state.js";

// What a major upgrade must know before it stops anything, read without changing anything: on the old
// primary, the cluster's own facts; on every host, what the new major's installation has.

export interface PrimaryFacts extends OldClusterFacts {
  /** Extensions installed in any database (plpgsql aside), and where. */
  extensions: Map<string, string[]>;
  preparedTransactions: number;
  /** Sessions in a transaction for more than LONG_TRANSACTION_S: a clean stop would end them. */
  longTransactions: { pid: number; user: string; database: string; seconds: number }[];
  /** Databases whose collation version differs from the one the OS has now (15+; empty before). */
  collationChanged: string[];
  bytes: number;
}

export const LONG_TRANSACTION_S = 300;

export async function readPrimaryFacts(target: SqlTarget, caps: Capabilities): Promise<PrimaryFacts> {
  const loc = caps.localeColumns;
  const json = await queryJson<{
    encoding: string; collate: string; ctype: string; provider: string | null; locale: string | null; checksums: string; segsize: string;
    prepared: number; long: { pid: number; user: string; database: string; seconds: number }[] | null; databases: string[]; bytes: string; collation: string[] | null;
  }>(
    target,
    `SELECT json_build_object(
      'encoding', pg_encoding_to_char(d.encoding), 'collate', d.datcollate, 'ctype', d.datctype,
      'provider', ${loc ? `d.${loc.provider}` : "NULL"}, 'locale', ${loc ? `d.${loc.locale}` : "NULL"},
      'checksums', current_setting('data_checksums'),
      'segsize', (SELECT (setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 ELSE 1 END)::text FROM pg_settings WHERE name = 'wal_segment_size'),
      'prepared', (SELECT count(*) FROM pg_prepared_xacts),
      'long', (SELECT json_agg(json_build_object('pid', pid, 'user', usename, 'database', datname, 'seconds', round(extract(epoch FROM now() - xact_start))))
               FROM pg_stat_activity WHERE xact_start < now() - interval '${LONG_TRANSACTION_S} seconds' AND pid <> pg_backend_pid() AND backend_type = 'client backend'),
      'databases', (SELECT json_agg(datname ORDER BY datname) FROM pg_database WHERE datallowconn),
      'bytes', (SELECT sum(pg_database_size(oid))::text FROM pg_database),
      'collation', ${caps.hasCollationVersions ? "(SELECT json_agg(datname ORDER BY datname) FROM pg_database WHERE datallowconn AND datcollversion IS DISTINCT FROM pg_database_collation_actual_version(oid))" : "NULL"}
    ) FROM pg_database d WHERE d.datname = 'template0'`,
    "reading the cluster's encoding, locale and checksums",
  );
  // Extensions are per database: psql connects to each in turn.
  const ext = await runSql(
    target,
    json.databases.map((d) => `\\connect ${psqlQuoted(d)}\nSELECT 'ext ' || extname || ' ' || current_database() FROM pg_extension WHERE extname <> 'plpgsql';`).join("\n"),
    "listing the extensions of every database",
  );
  const extensions = new Map<string, string[]>();
  for (const line of ext.split("\n")) {
    const m = /^ext (\S+) (.*)$/.exec(line.trim());
    if (m) extensions.set(m[1]!, [...(extensions.get(m[1]!) ?? []), m[2]!]);
  }
  return {
    encoding: json.encoding,
    collate: json.collate,
    ctype: json.ctype,
    provider: json.provider ?? undefined,
    locale: json.locale ?? undefined,
    checksums: json.checksums === "on",
    walSegmentBytes: Number(json.segsize),
    extensions,
    preparedTransactions: Number(json.prepared),
    longTransactions: json.long ?? [],
    collationChanged: json.collation ?? [],
    bytes: Number(json.bytes),
  };
}

/** psql's meta-command quoting: single quotes, doubled inside. */
function psqlQuoted(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

export interface HostUpgradeFacts {
  hasPgUpgrade: boolean;
  hasRsync: boolean;
  /** shared_preload_libraries of this host's running server. */
  preload: string[];
  /** Libraries (from shared_preload_libraries and extensions) the old major has here and the new one lacks. */
  missingLibraries: string[];
  /** Extensions the new major cannot install here (no control file). */
  missingExtensions: string[];
  freeBytes: number;
  glibc: string;
  tablespaces: number;
  walLinked: boolean;
  newVersion: string;
}

// Arguments: new_bin old_bin old_data new_data, then lib:NAME and ext:NAME items.
const FACTS_SCRIPT = String.raw`
nb=$1; ob=$2; od=$3; nd=$4; shift 4
[ -x "$nb/pg_upgrade" ] && echo "pg_upgrade=1"
command -v rsync >/dev/null && echo "rsync=1"
echo "new_version=$("$nb/postgres" --version | sed -E 's/^[^0-9]*([0-9]+(\.[0-9]+)?).*/\1/')"
nlib=$("$nb/pg_config" --pkglibdir 2>/dev/null || echo "$nb/../lib"); olib=$("$ob/pg_config" --pkglibdir 2>/dev/null || echo "$ob/../lib")
nshare=$("$nb/pg_config" --sharedir 2>/dev/null || echo "$nb/../share")
missing_lib=""; missing_ext=""
for item in "$@"; do
  name=$(printf %s "$item" | cut -d: -f2-)
  case "$item" in
    lib:*) lib=$(printf %s "$name" | sed 's|^\$libdir/||'); [ -e "$nlib/$lib.so" ] || [ -e "$nlib/$lib" ] || missing_lib="$missing_lib $lib" ;;
    ext:*) [ -e "$nshare/extension/$name.control" ] || missing_ext="$missing_ext $name"
           if [ -e "$olib/$name.so" ] && [ ! -e "$nlib/$name.so" ]; then missing_lib="$missing_lib $name"; fi ;;
  esac
done
echo "missing_lib=$missing_lib"; echo "missing_ext=$missing_ext"
p=$nd; while [ ! -d "$p" ]; do p=$(dirname "$p"); done
echo "free=$(df -Pk "$p" | awk 'NR==2 {print $4 * 1024}')"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || echo unknown)"
echo "tablespaces=$(ls -A "$od/pg_tblspc" 2>/dev/null | wc -l)"
[ -L "$od/pg_wal" ] && echo "wal_linked=1"
exit 0
`;

export async function readHostFacts(h: HostSpec, old: ReachableHost, next: ReachableHost, extensions: Iterable<string>): Promise<HostUpgradeFacts> {
  const preload = old.sql
    ? (await runSql({ t: old.transport, dataDir: old.layout.dataDir, psql: old.psql ?? "psql", osUser: h.pg.osUser }, "SHOW shared_preload_libraries", "reading shared_preload_libraries"))
        .split(",").map((s) => s.trim().replace(/^"|"$/g, "")).filter(Boolean)
    : [];
  const items = [...preload.map((l) => `lib:${l}`), ...[...extensions].map((e) => `ext:${e}`)];
  const r = await old.transport.run(["sh", "-c", FACTS_SCRIPT, "sh", next.layout.binDir, old.layout.binDir, old.layout.dataDir, next.layout.dataDir, ...items], { user: old.layout.admin, what: "reading what the new major has" });
  const kv = parseKv(r.stdout);
  if (!kv.has("free")) throw new PgrepError(`${h.name}: could not read the free disk space: ${r.stderr.trim()}`);
  const list = (k: string) => [...new Set((kv.get(k) ?? "").split(" ").filter(Boolean))];
  return {
    hasPgUpgrade: kv.get("pg_upgrade") === "1",
    hasRsync: kv.get("rsync") === "1",
    preload,
    missingLibraries: list("missing_lib"),
    missingExtensions: list("missing_ext"),
    freeBytes: Number(kv.get("free")),
    glibc: kv.get("glibc") ?? "unknown",
    tablespaces: Number(kv.get("tablespaces") ?? 0),
    walLinked: kv.get("wal_linked") === "1",
    newVersion: kv.get("new_version") ?? "",
  };
}
