import type { HostReport } from "../cluster/assess.js";
import { Connections } from "../cluster/connections.js";
import { debug } from "../debug.js";
import { acquireClusterLock, type HeldLock } from "../cluster/lock.js";
import type { ClusterSpec } from "../model/cluster.js";
import { observeCluster, observeStaged, type StagedSnapshot } from "../cluster/observe.js";
import type { ClusterSnapshot } from "../cluster/state.js";
import { InputError, UnreachableError } from "../errors.js";
import { checkLocalFiles, loadCluster } from "../inventory/index.js";
import { loadAppPasswords, loadReplicationPassword } from "../secrets.js";
import { loadTls, type TlsMaterial } from "../tls/material.js";

// What every command does first: load the inventory, then open one connection per host and observe.

export interface SessionOptions {
  inventory: string;
  acceptNewHostKeys?: boolean;
  /** setup: generate the password when there is none. Other changing commands: it must exist. status: optional. */
  password?: "create" | "require" | "optional";
  /** Commands that change the cluster hold its lock (on the hosts) for the whole session. */
  lock?: { waitSeconds: number } | undefined;
  /** setup: read the application roles' passwords (create the generated ones) and observe roles and databases. */
  apps?: "create" | "read";
  /**
   * Standbys that also look up the hosts' names (a promotion's target): in the first observe, or with
   * `actsFirstOn`, once the other hosts are read.
   */
  resolveOn?: string[] | "standbys";
  /**
   * Hosts the command acts on first (with the primary): read alone, the others only when the command asks
   * for them, after it has acted (`observeStaged`). With a lock, it is held before any read.
   */
  actsFirstOn?: string[];
}

export interface Session {
  spec: ClusterSpec;
  conns: Connections;
  password: string | undefined;
  /** Replication TLS certificates and keys (inventories with replication.tls). */
  tls: TlsMaterial | undefined;
  /** Application roles' passwords (setup only). */
  appPasswords: Map<string, string> | undefined;
  /** `resolveOn`: standbys that look up the hosts' names too (one about to become the primary). */
  observe(resolveOn?: readonly string[]): Promise<ClusterSnapshot>;
  /** The first look as `actsFirstOn` asked for it (without it, every host at once). */
  observeStaged(): Promise<StagedSnapshot>;
  close(): Promise<void>;
}

export async function openSession(opts: SessionOptions, validate?: (spec: ClusterSpec) => void): Promise<Session> {
  const spec = await loadCluster(opts.inventory);
  validate?.(spec);
  await checkLocalFiles(spec);
  const mode = opts.password ?? "require";
  const password = await loadReplicationPassword(spec, mode === "create");
  if (password === undefined && mode === "require") {
    const where = spec.password.kind === "generated" ? spec.password.path : "";
    throw new InputError(`no replication password: ${where} does not exist`, "run pgrep setup with this inventory first (the generated password lives beside it), or set replication.password");
  }
  // Made with the password (setup); a dry run or status uses what exists, and does without when nothing does.
  const tls = mode === "optional" ? await loadTls(spec, false).catch(() => undefined) : await loadTls(spec, mode === "create");
  const appPasswords = opts.apps ? await loadAppPasswords(spec, opts.apps === "create") : undefined;
  const conns = new Connections(spec, { acceptNewHostKeys: opts.acceptNewHostKeys ?? false });
  let lock: HeldLock<StagedSnapshot> | undefined;
  const resolveOn = opts.resolveOn === "standbys" ? spec.standbys.map((h) => h.name) : (opts.resolveOn ?? []);
  const observe = (on: readonly string[]) => observeCluster(spec, conns, password, appPasswords, on);
  const firstLook = async (): Promise<StagedSnapshot> => {
    if (opts.actsFirstOn) return observeStaged(spec, conns, password, resolveOn, opts.actsFirstOn);
    const whole = await observe(resolveOn);
    return { first: whole, positions: [], all: () => Promise.resolve(whole) };
  };
  if (opts.lock) {
    for (const h of spec.hosts) conns.get(h); // every host is dialled at once; the lock waits for them
    try {
      // The first look at every host runs beside the locking of all but the first.
      lock = await acquireClusterLock(spec, conns, { waitSeconds: opts.lock.waitSeconds, onWait: (holder) => process.stderr.write(`Waiting for the cluster lock: held by ${holder}\n`) }, firstLook, readTimes);
    } catch (e) {
      await conns.closeAll();
      throw e;
    }
  }
  let first = lock?.early;
  return {
    spec,
    conns,
    password,
    tls,
    appPasswords,
    observe: async (on = []) => {
      const same = on.length === resolveOn.length && on.every((n) => resolveOn.includes(n));
      const snap = first && same ? await first.all() : await observe(on);
      first = undefined;
      debug("observed every host");
      return snap;
    },
    observeStaged: async () => {
      const staged = first ?? (await firstLook());
      first = undefined;
      debug("observed the hosts the command acts on first");
      return staged;
    },
    close: async () => {
      await lock?.release().catch(() => {});
      debug("lock released");
      await conns.closeAll();
      debug("connections closed");
    },
  };
}

/** When each host's part of a first look was read, by its own clock (hosts that did not answer are not in it). */
function readTimes(staged: StagedSnapshot): Map<string, string | undefined> {
  const at = new Map<string, string | undefined>();
  for (const h of staged.first.hosts.values()) if (h.reachable) at.set(h.name, h.readAt);
  for (const p of staged.positions) if (p.position || !p.why.startsWith("unreachable")) at.set(p.name, p.readAt);
  return at;
}

/** Throws the unreachable hosts' errors (exit 3) when any host could not be read. */
export function requireAllReachable(snap: ClusterSnapshot): void {
  const down = [...snap.hosts.values()].filter((h) => !h.reachable);
  if (!down.length) return;
  const first = down[0]!;
  if (down.length === 1 && !first.reachable) throw first.error;
  const msg = down.map((h) => (h.reachable ? "" : h.error.message)).join("\n");
  throw new UnreachableError(down.map((h) => h.name).join(", "), `\n${msg}`);
}

export function healthy(reports: HostReport[]): boolean {
  return reports.every((r) => r.ok);
}

/** Observes with another spec (after the inventory changed) over the session's open connections. */
export async function observeWith(session: Session, spec: ClusterSpec): Promise<ClusterSnapshot> {
  return observeCluster(spec, session.conns, session.password, session.appPasswords);
}
