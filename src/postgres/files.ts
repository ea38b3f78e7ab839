// Pure text edits of PostgreSQL's files: pg_hba managed block, .pgpass lines, include lines, conninfo.

export function blockMarkers(cluster: string): { begin: string; end: string } {
  return { begin: `# BEGIN pgrep cluster ${cluster}`, end: `# END pgrep cluster ${cluster}` };
}

/** Replaces the managed block, or inserts it before the first rule so that it is matched first. */
export function applyBlock(existing: string, block: string, begin: string, end: string): string {
  const blockLines = block.replace(/\n$/, "").split("\n");
  const lines = existing === "" ? [] : existing.replace(/\n$/, "").split("\n");
  const b = lines.indexOf(begin);
  const e = lines.indexOf(end);
  let out: string[];
  if (b !== -1 && e > b) out = [...lines.slice(0, b), ...blockLines, ...lines.slice(e + 1)];
  else {
    const firstRule = lines.findIndex((l) => l.trim() !== "" && !l.trim().startsWith("#"));
    const at = firstRule === -1 ? lines.length : firstRule;
    out = [...lines.slice(0, at), ...blockLines, ...lines.slice(at)];
  }
  return `${out.join("\n")}\n`;
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
