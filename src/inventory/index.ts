import { relative } from "node:path";
import type { ClusterSpec } from "../model/cluster.js";
import { InventoryError, loadInventoryText, parseInventory, type InventoryProblem } from "./load.js";
import { resolveCluster } from "./resolve.js";

/** Reads, validates and resolves an inventory. Throws InventoryError (exit 2) before anything is contacted. */
export async function loadCluster(file: string): Promise<ClusterSpec> {
  return clusterFromText(file, await loadInventoryText(file));
}

/** The same from text already in hand (a dry run's would-be inventory). */
export function clusterFromText(file: string, text: string): ClusterSpec {
  const { inventory, doc, lines } = parseInventory(file, text);
  return resolveCluster(file, inventory, doc, lines);
}

/** Every file on this machine the inventory names must be readable: one line per missing one (exit 2). */
export async function checkLocalFiles(spec: ClusterSpec): Promise<void> {
  const { access, constants } = await import("node:fs/promises");
  const problems: InventoryProblem[] = [];
  for (const f of spec.localFiles) {
    try {
      await access(f.path, constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      problems.push({ line: f.line, col: f.col, keyPath: f.keyPath, message: `cannot read ${f.path} (${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code})` });
    }
  }
  if (problems.length) throw new InventoryError(shownPath(spec.inventoryFile), problems);
}

/** An inventory path as the user would write it: relative when it is below the current directory. */
export function shownPath(file: string): string {
  const r = relative(process.cwd(), file);
  return r.startsWith("..") || r === "" ? file : r;
}
