import type { ClusterSpec } from "../cluster/model.js";
import { loadInventoryText, parseInventory } from "./load.js";
import { resolveCluster } from "./resolve.js";

/** Reads, validates and resolves an inventory. Throws InventoryError (exit 2) before anything is contacted. */
export async function loadCluster(file: string): Promise<ClusterSpec> {
  const text = await loadInventoryText(file);
  const { inventory, doc, lines } = parseInventory(file, text);
  return resolveCluster(file, inventory, doc, lines);
}
