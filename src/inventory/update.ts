import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { isMap, isSeq, parseDocument } from "yaml";
import { PgrepError } from "../errors.js";
import type { Role } from "../cluster/model.js";

export interface RoleChange {
  host: string;
  role: Role;
  /** undefined: leave as is; null: remove (stream from the primary). */
  upstream?: string | null;
}

/** Pure: the inventory text with the hosts' role and upstream keys rewritten, comments and layout kept. */
export function withTopology(file: string, text: string, changes: RoleChange[]): string {
  const doc = parseDocument(text);
  const hosts = doc.get("hosts", true);
  if (!isSeq(hosts)) throw new PgrepError(`${file}: hosts is not a list; cannot record the new roles`);
  for (const c of changes) {
    const item = hosts.items.find((i) => isMap(i) && i.get("name") === c.host);
    if (!isMap(item)) throw new PgrepError(`${file}: no host ${c.host}; cannot record its new role`);
    item.set("role", c.role);
    if (c.upstream === null) item.delete("upstream");
    else if (c.upstream !== undefined) item.set("upstream", c.upstream);
  }
  return doc.toString();
}

/**
 * The inventory is the record of who is primary: after a role change pgrep rewrites it in place, so that
 * the next `setup` builds on the new topology.
 */
export async function recordTopology(file: string, changes: RoleChange[]): Promise<void> {
  const next = withTopology(file, await readFile(file, "utf8"), changes);
  // Another file in the same directory, renamed over the inventory: never a half-written inventory.
  const mode = (await stat(file)).mode & 0o777;
  const tmp = `${file}.pgrep-tmp`;
  await writeFile(tmp, next, { mode });
  await rename(tmp, file);
}
