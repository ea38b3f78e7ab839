import { bytes } from "../cluster/format.js";
import type { ClusterSpec } from "../model/cluster.js";
import type { ClusterSnapshot } from "../cluster/state.js";
import { slotName } from "../postgres/replication.js";
import type { RoleChange } from "../inventory/update.js";
import type { Method } from "../postgres/promote.js";

// Role changes (promote, switchover, rejoin) as data, like setup's plan: the command decides the steps from
// what it observed, a dry run prints them, and only the executor acts on them.

export type RoleStep =
  /** Stop cleanly; with `waitOn`, then wait until that standby has replayed the shutdown checkpoint. */
  | { kind: "stop"; host: string; waitOn?: string; why: string }
  | { kind: "fence-command"; host: string; why: string }
  /**
   * `slots`: made on it just before, for the standbys that will stream from it, so that they can follow at
   * once. `restartOnFailure`: the host to start again when the promotion fails (switchover).
   */
  | { kind: "promote"; host: string; method: Method; slots: string[]; restartOnFailure?: string; why: string }
  /**
   * WAL the stopped old primary `from` wrote after `have` (what `host` holds) up to `end`, copied from its
   * pg_wal into host's and replayed before the promotion. When it fails, the promotion goes on without it
   * and `from` waits for pgrep rejoin.
   */
  | { kind: "salvage"; host: string; from: string; have: string; end: string; timeline: number; segmentSize: number; bytes: number; why: string }
  | { kind: "checkpoint"; host: string; why: string }
  /** The setup plan's primary phase alone (pg_hba, role), so that the primary accepts `host` before it is rewound. */
  | { kind: "admit"; host: string; primary: string; why: string }
  | { kind: "rewind"; host: string; from: string; allowReclone: boolean; why: string }
  /** The whole data directory copied again (the converge after it clones this host). */
  | { kind: "reclone"; host: string; from: string; why: string }
  | { kind: "record"; file: string; changes: RoleChange[]; why: string }
  /**
   * The ordinary setup plan for the (new) topology; `markStandby` is first made a standby whatever it
   * holds, and with `rejoinLater` also marked as waiting for `pgrep rejoin` (it is then in `skip`).
   */
  | { kind: "converge"; skip: string[]; markStandby?: string; rejoinLater?: boolean; why: string };

const METHOD_LABEL: Record<Method, string> = { pg_promote: "pg_promote()", pg_ctl: "pg_ctl promote", trigger_file: "the trigger file" };

export function methodLabel(m: Method): string {
  return METHOD_LABEL[m];
}

export function describeRoleStep(s: RoleStep): string {
  switch (s.kind) {
    case "stop":
      return s.waitOn ? `stop PostgreSQL cleanly, then wait until ${s.waitOn} has replayed its shutdown checkpoint` : "stop PostgreSQL";
    case "fence-command":
      return "run the inventory's fence command";
    case "promote":
      return `promote with ${methodLabel(s.method)}, after replaying what it has received${s.slots.length ? ` and making its standbys' slot${s.slots.length > 1 ? "s" : ""} ${s.slots.join(", ")}` : ""}`;
    case "salvage":
      return `copy the ${bytes(s.bytes)} of WAL ${s.from} wrote after ${s.have} (up to ${s.end}) from its pg_wal, restart on it and replay it`;
    case "checkpoint":
      return "CHECKPOINT";
    case "admit":
      return `bring ${s.primary}'s pg_hba.conf and replication role in line first`;
    case "rewind":
      return `pg_rewind against ${s.from}${s.allowReclone ? " (a full copy if that fails: --allow-reclone)" : ""}`;
    case "reclone":
      return `copy the whole data directory from ${s.from} again (--allow-reclone)`;
    case "record":
      return `record the new roles in ${s.file}`;
    case "converge":
      return "bring the other hosts in line with the inventory (the setup plan)";
  }
}

export function stepHost(s: RoleStep): string | undefined {
  return s.kind === "record" || s.kind === "converge" ? undefined : s.host;
}

/** The record step of a promotion: `target` is the primary, every other host its standby. */
export function recordNewPrimary(spec: ClusterSpec, target: string): Extract<RoleStep, { kind: "record" }> {
  // The old primary, its standbys and the target's own cascading standbys stream from the new primary
  // (upstream key removed); standbys of other standbys keep streaming from them.
  const changes = [
    { host: target, role: "primary" as const, upstream: null },
    ...spec.hosts
      .filter((h) => h.name !== target)
      .map((h) => {
        const keeps = h.role === "standby" && h.upstream !== spec.primary.name && h.upstream !== target;
        return { host: h.name, role: "standby" as const, upstream: keeps ? h.upstream! : null };
      }),
  ];
  return { kind: "record", file: spec.inventoryFile, changes, why: "the inventory is the record of who is primary" };
}

/**
 * The slots the new primary will serve once `record` has made it the primary: one per host that will
 * stream from it and answers now (a host that is down must not pin WAL), less those it has.
 */
export function followerSlots(
  spec: ClusterSpec,
  snap: ClusterSnapshot,
  record: Extract<RoleStep, { kind: "record" }>,
  oldPrimaryFollows: boolean,
  answers: (host: string) => boolean = (n) => !!snap.hosts.get(n)?.reachable,
): string[] {
  if (!spec.slots) return [];
  const target = record.changes.find((c) => c.role === "primary")!.host;
  const T = snap.hosts.get(target);
  const have = new Set(T?.reachable && T.sql ? T.sql.slots.map((x) => x.name) : []);
  return record.changes
    .filter((c) => c.role === "standby" && c.upstream === null && answers(c.host) && (c.host !== spec.primary.name || oldPrimaryFollows))
    .map((c) => slotName(c.host))
    .filter((n) => !have.has(n));
}
