import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import type { SqlTarget } from "../postgres/sql.js";
import type { TlsMaterial } from "../tls/material.js";

export interface Reporter {
  step(host: string, text: string): void;
  done(host: string, text: string, ms: number): void;
  info(text: string): void;
  /** How far a long step is (a copy); undefined when it is over. */
  live(host: string, text: string | undefined): void;
}

/** What executing a plan needs besides the plan. The password lives here, never in the plan. */
export interface ExecContext {
  spec: ClusterSpec;
  snap: ClusterSnapshot;
  password: string;
  /** Application roles' passwords, by role (setup). */
  appPasswords?: ReadonlyMap<string, string> | undefined;
  /** Certificates and keys for replication.tls; like the password, never part of a plan. */
  tls?: TlsMaterial | undefined;
  report: Reporter;
  /** Bounded waits (ms). */
  streamTimeoutMs: number;
}

export function hostOf(ctx: ExecContext, name: string): { spec: HostSpec; state: ReachableHost } {
  const spec = ctx.spec.hosts.find((h) => h.name === name)!;
  return { spec, state: ctx.snap.hosts.get(name) as ReachableHost };
}

export function sqlTarget(spec: HostSpec, s: ReachableHost): SqlTarget {
  return { t: s.transport, dataDir: s.layout.dataDir, psql: s.psql ?? "psql", osUser: spec.pg.osUser };
}
