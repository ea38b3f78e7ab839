import { readFileSync } from "node:fs";
import { expect } from "vitest";
import type { Rig } from "./rig.js";

/** The replication password setup generated for an inventory (in its .state directory). */
export function replicationPassword(inventory: string): string {
  return readFileSync(inventory.replace(/\.yml$/, ".state/replication-password"), "utf8").trim();
}

/** Runs a command while the hosts are watched for the secrets (Rig.watchForSecrets); none may be seen. */
export async function withoutSecrets<T>(rig: Rig, hosts: string[], secrets: string[], run: () => Promise<T>): Promise<T> {
  const watch = await rig.watchForSecrets(hosts, secrets);
  try {
    return await run();
  } finally {
    expect(await watch.stop()).toEqual([]);
  }
}
