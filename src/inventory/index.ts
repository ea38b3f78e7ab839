import type { ClusterSpec } from "../cluster/model.js";
import { loadInventoryText, parseInventory } from "./load.js";
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
