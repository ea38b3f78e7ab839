// Pure text edits of PostgreSQL's files: pg_hba managed block, .pgpass lines, include lines, conninfo.

export function blockMarkers(cluster: string): { begin: string; end: string } {
  return { begin: `# BEGIN pgrep cluster ${cluster}`, end: `# END pgrep cluster ${cluster}` };
}

/**
 * pgrep's block in pg_hba.conf, which PostgreSQL reads top down, first match wins. It goes before the
 * first rule — so that a broad rule of the file cannot change how pgrep's hosts and applications log in —
 * except that every `reject` a DBA wrote for something in particular stays above it and keeps rejecting.
 * A deny-by-default line (reject all databases and users from everywhere) stays below it: it refuses what
 * nothing above allows, and the inventory's rules are allowed on purpose. The block moves when a DBA adds
 * such a reject below it; otherwise it stays where it is.
 */
export function applyBlock(existing: string, block: string, begin: string, end: string): string {
  const blockLines = block.replace(/\n$/, "").split("\n");
  let lines = existing === "" ? [] : existing.replace(/\n$/, "").split("\n");
  const b = lines.indexOf(begin);
  const e = lines.indexOf(end);
  const at = b !== -1 && e > b ? b : -1;
  if (at !== -1) lines = [...lines.slice(0, b), ...lines.slice(e + 1)];
  let lastReject = -1;
  lines.forEach((l, i) => rejectsSomething(l) && (lastReject = i));
  const firstRule = lines.findIndex((l) => l.trim() !== "" && !l.trim().startsWith("#"));
  // In place (where it was, or before the first rule) unless a particular reject comes after that place.
  const place = at !== -1 ? at : firstRule === -1 ? lines.length : firstRule;
  const where = lastReject >= place ? lastReject + 1 : place;
  return `${[...lines.slice(0, where), ...blockLines, ...lines.slice(where)].join("\n")}\n`;
}

const HOST_TYPES = new Set(["host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"]);
const EVERYWHERE = new Set(["all", "0.0.0.0/0", "::/0"]);

/** A TCP rule whose method is reject, for particular databases, users or addresses (not deny-by-default). */
export function rejectsSomething(line: string): boolean {
  const f = line.replace(/#.*/, "").trim().split(/\s+/);
  if (!HOST_TYPES.has(f[0] ?? "")) return false;
  // type database user address [mask] method [options]: the method follows the address (and its mask).
  const mask = f[4] !== undefined && /^[\d.]+$/.test(f[4]) && /^[\d.]+$/.test(f[3] ?? "");
  if (f[mask ? 5 : 4] !== "reject") return false;
  const everywhere = mask ? f[3] === "0.0.0.0" && f[4] === "0.0.0.0" : EVERYWHERE.has(f[3] ?? "");
  return !(f[1] === "all" && f[2] === "all" && everywhere);
}

/**
 * The addresses pgrep's block already admits for each host name (from its `# name, name` comments): what
 * a host that is down keeps, without a lookup of its name now.
 */
export function blockAddresses(existing: string | null, begin: string, end: string): Map<string, string[]> {
  const lines = (existing ?? "").split("\n");
  const b = lines.indexOf(begin);
  const e = lines.indexOf(end);
  const found = new Map<string, string[]>();
  if (b === -1 || e < b) return found;
  for (const l of lines.slice(b + 1, e)) {
    const m = /^\S+\s+replication\s+\S+\s+(\S+)\s+\S+\s+#\s*(.+)$/.exec(l.trim());
    if (!m) continue;
    for (const name of m[2]!.split(",").map((n) => n.trim())) found.set(name, [...(found.get(name) ?? []), m[1]!]);
  }
  return found;
}

/** name → value of a configuration file's settings (a later line wins, as in PostgreSQL). */
export function parseSettings(text: string | null): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of (text ?? "").split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*('(?:[^']|'')*'|[^\s#]*)/.exec(line);
    if (m && !/^\s*(include|include_if_exists|include_dir)\b/.test(line)) found.set(m[1]!.toLowerCase(), m[2]!);
  }
  return found;
}

/** The settings whose value differs between two versions of a configuration file. */
export function changedSettings(before: string | null, after: string | null): string[] {
  const a = parseSettings(before);
  const b = parseSettings(after);
  return [...new Set([...a.keys(), ...b.keys()])].filter((n) => a.get(n) !== b.get(n));
}

/** Adds the line at the end unless it is there already. */
export function ensureLine(existing: string, line: string): string {
  if (existing.split("\n").some((l) => l.trim() === line.trim())) return existing;
  return `${existing}${existing === "" || existing.endsWith("\n") ? "" : "\n"}${line}\n`;
}

export interface PgpassEntry {
  host: string;
  port: number;
  user: string;
  password: string;
}

function pgpassField(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll(":", "\\:");
}

/** Database "*": replication connections, and the ordinary one pg_rewind makes to the new primary. */
export function pgpassLine(e: PgpassEntry): string {
  return [e.host, String(e.port), "*", e.user, e.password].map(pgpassField).join(":");
}

/** Keeps the user's other lines; replaces those pgrep owns (same host:port:user, database * or replication). */
export function mergePgpass(existing: string, entries: PgpassEntry[]): string {
  const ours = new Set(entries.flatMap((e) => ["*", "replication"].map((db) => [e.host, String(e.port), db, e.user].map(pgpassField).join(":") + ":")));
  const kept = existing.split("\n").filter((l) => l !== "" && !ours.has(l.replace(/((?:[^:\\]|\\.)*)$/, "")));
  return [...kept, ...entries.map(pgpassLine)].join("\n") + "\n";
}

function conninfoValue(v: string): string {
  return /^[A-Za-z0-9_./:@-]+$/.test(v) ? v : `'${v.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** libpq key=value string. Carries no password: that is in the passfile. */
export function conninfo(params: Record<string, string | number | undefined>): string {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${conninfoValue(String(v))}`)
    .join(" ");
}

/** A postgresql.conf value as the server reads it: quotes removed, '' and \\ undone. */
export function confValue(raw: string | undefined): string | undefined {
  if (raw === undefined || !raw.startsWith("'")) return raw;
  return raw.slice(1, -1).replace(/''|\\(.)/g, (m, c: string | undefined) => (m === "''" ? "'" : c!));
}

/** libpq's keyword=value connection string: values bare, or in single quotes with \' and \\. */
export function parseConninfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/([A-Za-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S*))/g)) out.set(m[1]!.toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]!);
  return out;
}

/** The file without the lines that set these settings (what ALTER SYSTEM RESET leaves). */
export function withoutSettings(text: string, names: readonly string[]): string {
  const line = new RegExp(`^\\s*(${names.join("|")})\\s*=`, "i");
  return text.split("\n").filter((l) => !line.test(l)).join("\n");
}

/** For a diff shown on screen: pg_basebackup -R writes the password into primary_conninfo. */
export function hidePasswords(text: string): string {
  // Quoted inside a quoted setting (''…''), quoted in a bare conninfo ('…'), or bare.
  return text.replace(/(\bpassword\s*=\s*)(''(?:[^']|\\'')*?''|'(?:[^'\\]|\\.)*'|[^\s']+)/gi, "$1(hidden)");
}

/** The file with one setting's line set to `value` (quoted), or taken out (null); other lines kept. */
export function setSetting(text: string, name: string, value: string | null): string {
  const line = new RegExp(`^\\s*${name}\\s*=`, "i");
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  const i = lines.findIndex((l) => line.test(l));
  const wanted = value === null ? [] : [`${name} = '${value.replaceAll("'", "''")}'`];
  const out = i === -1 ? [...lines, ...wanted] : [...lines.slice(0, i), ...wanted, ...lines.slice(i + 1).filter((l) => !line.test(l))];
  return `${out.join("\n")}\n`;
}
