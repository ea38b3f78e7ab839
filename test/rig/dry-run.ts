import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { pgrep, type CliResult } from "../cli.js";
import type { ClusterAt, Rig } from "./rig.js";

// A dry run promises to change nothing. Every dry run a test makes goes through here: the before-state is
// taken first, the dry run made, and the after-state compared — on the hosts (Rig.fingerprint, Debian's
// layout or a generic one's) and on this machine (the rig's directory: inventories, their .state, keys, known_hosts).

/** Every file under a local directory, by name and content. */
function localFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort()
    .map((f) => `${f} ${createHash("sha256").update(readFileSync(f)).digest("hex").slice(0, 16)}`);
}

const AUTO_CONF = "/var/lib/postgresql/15/main/postgresql.auto.conf";

/**
 * `pgrep ARGS --dry-run`, checked to have changed nothing on `hosts` (default: every host) and locally.
 * `at`: a generic-layout cluster's place (default: Debian's 15/main).
 */
export async function dryRun(rig: Rig, args: string[], hosts: string[] = rig.hosts.map((h) => h.name), at?: ClusterAt): Promise<CliResult> {
  const print = (h: string) => (at ? rig.fingerprintAt(h, at) : rig.fingerprint(h, AUTO_CONF));
  const take = async () => ({ local: localFiles(rig.dir), hosts: await Promise.all(hosts.map(async (h) => `${h}:\n${await print(h)}`)) });
  const before = await take();
  const r = await pgrep([...args, "--dry-run"]);
  expect(await take(), `pgrep ${args.join(" ")} --dry-run changed something`).toEqual(before);
  return r;
}
