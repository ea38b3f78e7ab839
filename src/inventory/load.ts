import { readFile } from "node:fs/promises";
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document, type Node } from "yaml";
import type { ZodIssue } from "zod";
import { InputError } from "../errors.js";
import { keysAt, suggest } from "./suggest.js";
import { inventorySchema, type Inventory } from "./schema.js";

/** One problem in an inventory, already pointing at the file position. */
export interface InventoryProblem {
  line: number;
  col: number;
  keyPath: string;
  message: string;
}

export class InventoryError extends InputError {
  constructor(
    readonly file: string,
    readonly problems: InventoryProblem[],
  ) {
    super(problems.map((p) => `${file}:${p.line}:${p.col}: ${p.keyPath ? `${p.keyPath}: ` : ""}${p.message}`).join("\n"));
  }
}

/** Far above any real inventory; a larger file is refused before it is parsed. */
const MAX_INVENTORY_BYTES = 1024 * 1024;

export async function loadInventoryText(file: string): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    if (text.length > MAX_INVENTORY_BYTES) throw new InputError(`${file}: the inventory is ${Math.round(text.length / 1024)} KiB; pgrep reads at most ${MAX_INVENTORY_BYTES / 1024} KiB`);
    return text;
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read the inventory (${code ?? (e as Error).message})`, "pass an inventory with --inventory FILE");
  }
}

/** Parses and validates; every problem names file:line:col and the key path. */
export function parseInventory(file: string, text: string): { inventory: Inventory; doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => lines.linePos(offset);
  if (doc.errors.length) {
    // The first syntax error: the ones after it are most often its echoes.
    const e = doc.errors[0]!;
    const message = /call stack/i.test(e.message) ? "nested too deeply" : e.message.split("\n")[0];
    throw new InventoryError(file, [{ ...at(e.pos[0]), keyPath: "", message: `YAML: ${message}` }]);
  }
  if (doc.contents === null) throw new InventoryError(file, [{ line: 1, col: 1, keyPath: "", message: "the inventory is empty (it needs cluster, postgres and hosts; see inventories/example.yml)" }]);
  let data: unknown;
  try {
    // Aliases are fine; a billion-laughs tree of them is not: more than 100 expanded is an error.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new InventoryError(file, [{ line: 1, col: 1, keyPath: "", message: `YAML: ${(e as Error).message.split("\n")[0]} (an inventory needs only a few aliases)` }]);
  }
  const result = inventorySchema.safeParse(data ?? {});
  if (!result.success) {
    const issues = result.error.issues;
    // A misspelt required key is one mistake: "unknown key 'adress' (did you mean 'address'?)" says it all.
    const misspelt = (i: ZodIssue) =>
      i.code === "invalid_type" && i.received === "undefined" &&
      issues.some((u) => u.code === "unrecognized_keys" && samePath(u.path, i.path.slice(0, -1)) && u.keys.some((k) => suggest(k, [String(i.path.at(-1))]) !== ""));
    throw new InventoryError(file, issues.filter((i) => !misspelt(i)).map((i) => problemFor(doc, lines, i)));
  }
  return { inventory: result.data, doc, lines };
}

/** Where a key path points in the YAML, for messages produced after validation. */
export function positionOf(doc: Document, lines: LineCounter, path: (string | number)[]): { line: number; col: number } {
  let node: unknown = doc.getIn(path, true);
  for (let n = path.length; !hasRange(node) && n > 0; n--) node = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
  const offset = hasRange(node) ? node.range[0] : 0;
  return lines.linePos(offset);
}

function hasRange(n: unknown): n is Node & { range: [number, number, number] } {
  return !!n && typeof n === "object" && Array.isArray((n as Node).range);
}

export function keyPathText(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

function samePath(a: (string | number)[], b: (string | number)[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function problemFor(doc: Document, lines: LineCounter, issue: ZodIssue): InventoryProblem {
  const path = [...issue.path];
  if (issue.code === "unrecognized_keys" && path.at(-1) === "password" && issue.keys.some((k) => k === "env" || k === "file")) {
    return { ...positionOf(doc, lines, path), keyPath: keyPathText(path), message: "use either { env: VARIABLE } or { file: PATH }, not both" };
  }
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const parent = path.length ? doc.getIn(path, true) : doc.contents;
    let offset = 0;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
      if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
    }
    const pos = offset ? lines.linePos(offset) : positionOf(doc, lines, path);
    const plural = issue.keys.length > 1 ? `s ${issue.keys.map((k) => `'${k}'`).join(", ")}` : ` '${key}'`;
    return { ...pos, keyPath: keyPathText([...path, key]), message: `unknown key${plural}${suggest(key, keysAt(inventorySchema, path))}` };
  }
  return { ...positionOf(doc, lines, path), keyPath: keyPathText(path), message: messageFor(issue) };
}

function messageFor(issue: ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.received === "undefined" ? "is required" : `expected ${issue.expected}, got ${issue.received}`;
    case "invalid_enum_value":
      return `must be one of ${issue.options.map((o) => `'${String(o)}'`).join(", ")} (got '${String(issue.received)}')`;
    case "invalid_union":
      return issue.path.at(-1) === "synchronous" ? "must be a list of standby names, or { any: N, of: [names] }" : "must be either { env: VARIABLE } or { file: PATH }";
    case "too_small":
      return issue.type === "array" ? `needs at least ${issue.minimum} entr${issue.minimum === 1 ? "y" : "ies"}` : `must be at least ${issue.minimum}`;
    case "too_big":
      return `must be at most ${issue.maximum}`;
    default:
      return issue.message;
  }
}
