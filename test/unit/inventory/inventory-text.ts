import { InventoryError, parseInventory } from "../../../src/inventory/load.js";
import { resolveCluster } from "../../../src/inventory/resolve.js";

// An inventory given as text, resolved as loadCluster would, or the one-line problems it reports.

export function load(text: string, file = "/srv/inv.yml") {
  const { inventory, doc, lines } = parseInventory(file, text);
  return resolveCluster(file, inventory, doc, lines);
}

export function problems(text: string, file = "/srv/inv.yml"): string[] {
  try {
    load(text, file);
  } catch (e) {
    if (e instanceof InventoryError) return e.message.split("\n");
    throw e;
  }
  throw new Error("expected an InventoryError");
}
