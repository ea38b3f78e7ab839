import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { isMap, isPair, isScalar, isSeq, parseDocument, type Pair, type YAMLMap } from "yaml";
import { isDeepStrictEqual } from "node:util";
import { PgrepError } from "../errors.js";
import type { Role } from "../model/cluster.js";

export interface RoleChange {
  host: string;
  role: Role;
  /** undefined: leave as is; null: remove (stream from the primary). */
  upstream?: string | null;
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

/**
 * Pure: the inventory text with the hosts' role and upstream values rewritten in place. Only those values
 * (or the upstream line) change; every other byte, comments and their spacing included, stays as it was.
 */
export function withTopology(file: string, text: string, changes: RoleChange[]): string {
  const doc = parseDocument(text, { keepSourceTokens: true });
  const hosts = doc.get("hosts", true);
  if (!isSeq(hosts)) throw new PgrepError(`${file}: hosts is not a list; cannot record the new roles`);
  const edits: Edit[] = [];
  for (const c of changes) {
    const item = hosts.items.find((i) => isMap(i) && i.get("name") === c.host);
    if (!isMap(item)) throw new PgrepError(`${file}: no host ${c.host}; cannot record its new role`);
    const role = pairOf(item, "role");
    if (!role) throw new PgrepError(`${file}: host ${c.host} has no role; cannot record its new role`);
    if (item.get("role") !== c.role) edits.push(replaceValue(role, c.role));
    const upstream = pairOf(item, "upstream");
    if (c.upstream === null && upstream) edits.push(removePair(text, item, upstream));
    else if (c.upstream && !upstream) edits.push(insertAfter(text, item, role, "upstream", c.upstream));
    else if (c.upstream && upstream && item.get("upstream") !== c.upstream) edits.push(replaceValue(upstream, c.upstream));
  }
  let next = text;
  for (const e of edits.sort((a, b) => b.start - a.start)) next = next.slice(0, e.start) + e.text + next.slice(e.end);
  check(file, text, next, changes);
  return next;
}

function pairOf(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((p): p is Pair => isPair(p) && isScalar(p.key) && p.key.value === key);
}

function range(node: unknown): [number, number] {
  const r = (node as { range?: [number, number, number] } | null)?.range;
  if (!r) throw new PgrepError("the inventory has a value without a position; cannot rewrite it safely");
  return [r[0], r[1]];
}

function replaceValue(pair: Pair, value: string): Edit {
  const [start, end] = range(pair.value);
  return { start, end, text: value };
}

function lineEnd(text: string, at: number): number {
  const nl = text.indexOf("\n", at);
  return nl < 0 ? text.length : nl;
}

function removePair(text: string, map: YAMLMap, pair: Pair): Edit {
  const [keyStart] = range(pair.key);
  const [, valueEnd] = range(pair.value);
  if (map.flow) {
    // `, upstream: x` (or `upstream: x, ` when it comes first)
    const before = text.lastIndexOf(",", keyStart);
    const open = text.lastIndexOf("{", keyStart);
    if (before > open) return { start: before, end: valueEnd, text: "" };
    const after = text.indexOf(",", valueEnd);
    return { start: keyStart, end: after < 0 ? valueEnd : after + 1 + (text[after + 1] === " " ? 1 : 0), text: "" };
  }
  const lineStart = text.lastIndexOf("\n", keyStart - 1) + 1;
  const end = lineEnd(text, valueEnd);
  if (text.slice(lineStart, keyStart).trim() === "") return { start: lineStart, end: Math.min(end + 1, text.length), text: "" };
  // First key on a "- " line: the next line's key moves up in its place.
  const nextStart = end + 1;
  const indent = /^[ ]*/.exec(text.slice(nextStart))![0].length;
  return { start: keyStart, end: nextStart + indent, text: "" };
}

function insertAfter(text: string, map: YAMLMap, after: Pair, key: string, value: string): Edit {
  const [keyStart] = range(after.key);
  const [, valueEnd] = range(after.value);
  if (map.flow) return { start: valueEnd, end: valueEnd, text: `, ${key}: ${value}` };
  const column = keyStart - (text.lastIndexOf("\n", keyStart - 1) + 1);
  const at = lineEnd(text, valueEnd); // after a comment on the same line, which stays with its line
  return { start: at, end: at, text: `\n${" ".repeat(column)}${key}: ${value}` };
}

/** The rewritten inventory must say exactly what was meant, and nothing else may differ. */
function check(file: string, before: string, after: string, changes: RoleChange[]): void {
  const want = parseDocument(before).toJS() as { hosts: Record<string, unknown>[] };
  for (const c of changes) {
    const h = want.hosts.find((x) => x.name === c.host)!;
    h.role = c.role;
    if (c.upstream === null) delete h.upstream;
    else if (c.upstream !== undefined) h.upstream = c.upstream;
  }
  const got = parseDocument(after);
  if (got.errors.length || !isDeepStrictEqual(got.toJS(), want))
    throw new PgrepError(`${file}: cannot record the new roles without changing other lines; edit the roles by hand`);
}

/**
 * The inventory is the record of who is primary: after a role change pgrep rewrites it in place, so that
 * the next `setup` builds on the new topology.
 */
export async function recordTopology(file: string, changes: RoleChange[]): Promise<void> {
  await replaceInventory(file, withTopology(file, await readFile(file, "utf8"), changes));
}

/** Another file in the same directory, renamed over the inventory: never a half-written inventory. */
export async function replaceInventory(file: string, text: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o777;
  const tmp = `${file}.pgrep-tmp`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, file);
}

/**
 * Pure: the inventory without `host` (a block-style list item, its lines removed), after `changes` (its
 * cascading standbys re-pointed). Every other byte stays as it was.
 */
export function withoutHost(file: string, text: string, host: string, changes: RoleChange[]): string {
  const moved = changes.length ? withTopology(file, text, changes) : text;
  const doc = parseDocument(moved, { keepSourceTokens: true });
  const hosts = doc.get("hosts", true);
  if (!isSeq(hosts) || hosts.flow) throw new PgrepError(`${file}: hosts is not a block list; cannot remove ${host} from it; edit it by hand`);
  const i = hosts.items.findIndex((x) => isMap(x) && x.get("name") === host);
  if (i < 0) throw new PgrepError(`${file}: no host ${host}; cannot remove it`);
  const [start] = range(hosts.items[i]);
  const from = moved.lastIndexOf("\n", start - 1) + 1; // the line of its "- "
  // To the end of its last value's line: a comment line after it belongs to the next item.
  const to = Math.min(lineEnd(moved, range(hosts.items[i])[1] - 1) + 1, moved.length);
  const after = moved.slice(0, from) + moved.slice(to);
  const want = parseDocument(moved).toJS() as { hosts: { name: string }[] };
  want.hosts = want.hosts.filter((h) => h.name !== host);
  const got = parseDocument(after);
  if (got.errors.length || !isDeepStrictEqual(got.toJS(), want)) throw new PgrepError(`${file}: cannot remove ${host} without changing other lines; edit it by hand`);
  return after;
}

/**
 * Pure: an inventory for `host` alone, as the primary of its own cluster `name`: everything else as in the
 * cluster's inventory (PostgreSQL, SSH, applications), less the synchronous standbys it cannot have.
 */
export function forkInventory(text: string, host: string, name: string): string {
  const doc = parseDocument(text);
  doc.set("cluster", name);
  const hosts = doc.get("hosts", true);
  if (!isSeq(hosts)) throw new PgrepError(`hosts is not a list`);
  hosts.items = hosts.items.filter((x) => isMap(x) && x.get("name") === host);
  const item = hosts.items[0] as YAMLMap;
  item.set("role", "primary");
  item.delete("upstream");
  if (doc.hasIn(["replication", "synchronous"])) doc.deleteIn(["replication", "synchronous"]);
  return doc.toString();
}

/** Pure: the inventory with postgres.major set to `major` (the value rewritten in place, nothing else). */
export function withMajor(file: string, text: string, major: number): string {
  const doc = parseDocument(text, { keepSourceTokens: true });
  const pg = doc.get("postgres", true);
  const pair = isMap(pg) ? pairOf(pg, "major") : undefined;
  if (!pair) throw new PgrepError(`${file}: no postgres.major to rewrite; set postgres.major by hand`);
  const e = replaceValue(pair, String(major));
  const next = text.slice(0, e.start) + e.text + text.slice(e.end);
  const want = doc.toJS() as { postgres: { major: number } };
  want.postgres.major = major;
  const got = parseDocument(next);
  if (got.errors.length || !isDeepStrictEqual(got.toJS(), want)) throw new PgrepError(`${file}: cannot rewrite postgres.major without changing other lines; set it to ${major} by hand`);
  return next;
}
