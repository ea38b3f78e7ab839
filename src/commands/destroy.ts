import { createInterface } from "node:readline/promises";
import { rm } from "node:fs/promises";
import { EXIT, InputError, type ExitCode } from "../errors.js";
import { loadCluster } from "../inventory/index.js";
import type { Output } from "../output.js";
import { forgetCreated, readCreated, type Created } from "../state-store.js";
import { Connections } from "../cluster/connections.js";
import { acquireClusterLock } from "../cluster/lock.js";
import type { ClusterSpec } from "../model/cluster.js";
import { LocalTransport } from "../transport/local.js";

const STOP_SCRIPT =
  'p=$(sed -n 1p "$1/postmaster.pid" 2>/dev/null); [ -n "$p" ] || exit 0; kill -INT "$p" 2>/dev/null; ' +
  'for i in $(seq 1 300); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.1; done; exit 1';

export interface DestroyCommandOptions {
  inventory: string;
  /** Seconds to wait for another command's cluster lock. */
  waitLock: number;
  yes: boolean;
  dryRun: boolean;
}

/** Stops and removes the clusters pgrep created for a local inventory; nothing else. */
export async function destroyCommand(opts: DestroyCommandOptions, out: Output): Promise<ExitCode> {
  const spec = await loadCluster(opts.inventory);
  const remote = spec.hosts.filter((h) => h.connection.kind !== "local");
  if (remote.length) throw new InputError(`destroy works only on local inventories; ${remote.map((h) => h.name).join(", ")} are reached over SSH`);
  const created = await readCreated(spec.stateDir);
  if (!created.length) {
    out.progress(`Nothing to remove: pgrep has not created anything for cluster ${spec.name} (${spec.stateDir}).`);
    return EXIT.ok;
  }
  const list = created.map((c) => `  [${c.host}] ${c.kind === "data_dir" ? "stop PostgreSQL and delete" : "delete"} ${c.path} — pgrep created it`).join("\n");
  if (opts.dryRun) {
    out.result(`Destroy cluster ${spec.name} (dry run):\n${list}`);
    out.progress("Dry run: nothing was changed.");
    return EXIT.ok;
  }
  out.progress(`This stops and deletes:\n${list}`);
  if (!opts.yes) {
    if (!process.stdin.isTTY) throw new InputError("destroy needs confirmation", "pass --yes to confirm without a terminal");
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await rl.question(`Type the cluster name (${spec.name}) to confirm: `);
    rl.close();
    if (answer.trim() !== spec.name) throw new InputError("not confirmed; nothing was removed");
  }
  const conns = new Connections(spec, { acceptNewHostKeys: false });
  const lock = await acquireClusterLock(spec, conns, { waitSeconds: opts.waitLock });
  try {
    await removeCreated(spec, created, out);
  } finally {
    await lock.release();
  }
  await forgetCreated(spec.stateDir);
  return EXIT.ok;
}

async function removeCreated(spec: ClusterSpec, created: Created[], out: Output): Promise<void> {
  const t = new LocalTransport("local");
  // Data directories first (their servers are stopped), then files.
  for (const c of [...created].sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "data_dir" ? -1 : 1))) {
    if (c.kind === "data_dir") {
      const osUser = spec.hosts.find((x) => x.name === c.host)?.pg.osUser ?? "postgres";
      // Signalling the postmaster needs no binaries of the right major.
      const stop = await t.run(["sh", "-c", STOP_SCRIPT, "sh", c.path], { user: osUser, allowFailure: true });
      if (stop.exitCode !== 0) out.progress(`[${c.host}] PostgreSQL did not stop within 30 s; removing its data anyway`);
    }
    await rm(c.path, { recursive: true, force: true });
    out.progress(`[${c.host}] removed ${c.path}`);
  }
}
