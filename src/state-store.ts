import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

// What pgrep created, kept beside the inventory, so that `destroy` removes only that.

export interface Created {
  host: string;
  kind: "data_dir" | "file";
  path: string;
  debianCluster?: string; // "15/main"
}

const FILE = "created.json";

export async function readCreated(stateDir: string): Promise<Created[]> {
  try {
    return JSON.parse(await readFile(join(stateDir, FILE), "utf8")) as Created[];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

let chain: Promise<unknown> = Promise.resolve();

/** Serialised: standbys are created in parallel. */
export function recordCreated(stateDir: string, entry: Created): Promise<void> {
  const next = chain.then(async () => {
    const all = (await readCreated(stateDir)).filter((c) => !(c.host === entry.host && c.path === entry.path));
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await writeFile(join(stateDir, FILE), JSON.stringify([...all, entry], null, 2) + "\n", { mode: 0o600 });
  });
  chain = next.catch(() => {});
  return next;
}

export async function forgetCreated(stateDir: string): Promise<void> {
  await rm(join(stateDir, FILE), { force: true });
}
