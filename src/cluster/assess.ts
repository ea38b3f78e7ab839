import { PgrepError } from "../errors.js";
import { slotName } from "../postgres/replication.js";
import { bytes } from "./format.js";
import { divergence } from "./positions.js";
import type { ClusterSpec } from "../model/cluster.js";
import type { ClusterSnapshot, ReachableHost } from "./state.js";

// Compares what the inventory wants with what a snapshot shows. Pure.

export interface HostReport {
  name: string;
  address: string;
  wanted: "primary" | "standby";
  observed: "primary" | "standby" | "unknown";
  state: "running" | "streaming" | "catchup" | "not streaming" | "stopped" | "unreachable" | "split brain" | "conflicting primary" | "diverged" | "running as standby" | "not a cluster" | "needs rejoin";
  ok: boolean;
  upstream: string | null;
  timeline: number | null;
  lsn: string | null;
  /** Primary's view (pg_stat_replication): bytes not yet replayed, and replay_lag. */
  lagBytes: number | null;
  lagSeconds: number | null;
  /** Standby's own view: WAL received but not replayed, and how long since it replayed a commit. */
  standbyReceivedLsn: string | null;
  standbyReplayGapBytes: number | null;
  standbySinceLastReplaySeconds: number | null;
  startedAt: string | null;
  /** The standby's slot on its upstream ("missing" when the inventory wants one and there is none). */
  slot: string | null;
  /** WAL the slot holds back on the upstream. */
  slotRetainedBytes: number | null;
  /**
   * Standbys: seconds behind as applications measure it on the standby (0 when it has replayed all it
   * received over a live connection, else the time since it replayed a commit), and whether that is within
   * applications.max_lag_seconds: the number app-config's Rails resolver routes reads by.
   */
  appLagSeconds: number | null;
  withinLagLimit: boolean | null;
  /** pg_stat_replication.sync_state: async, potential, sync or quorum. */
  syncState: string | null;
  problem: string | null;
}

export function assessCluster(spec: ClusterSpec, snap: ClusterSnapshot): HostReport[] {
  const P = snap.hosts.get(spec.primary.name);
  const primarySql = P?.reachable && P.sql && !P.sql.inRecovery ? P.sql : undefined;
  return spec.hosts.map((h) => {
    const s = snap.hosts.get(h.name);
    const base: HostReport = {
      name: h.name,
      address: h.address,
      wanted: h.role,
      observed: "unknown",
      state: "unreachable",
      ok: false,
      upstream: h.upstream ?? null,
      timeline: null,
      lsn: null,
      lagBytes: null,
      lagSeconds: null,
      standbyReceivedLsn: null,
      standbyReplayGapBytes: null,
      standbySinceLastReplaySeconds: null,
      startedAt: null,
      slot: null,
      slotRetainedBytes: null,
      syncState: null,
      appLagSeconds: null,
      withinLagLimit: null,
      problem: null,
    };
    if (!s || !s.reachable) return { ...base, problem: s ? describeError(h.name, s.error) : "not observed" };
    if (s.pgVersion === undefined) return { ...base, state: "not a cluster", problem: `no PostgreSQL cluster in ${s.layout.dataDir}` };
    if (s.needsRejoin && h.role === "standby" && !(s.sql && !s.sql.inRecovery))
      return { ...base, state: "needs rejoin", problem: `a former primary, left for rejoin: pgrep rejoin ${h.name} (pg_rewind, or --allow-reclone)` };
    if (!s.running || !s.sql) return { ...base, state: "stopped", problem: s.running ? `cannot query: ${s.sqlError ?? "no psql"}` : "PostgreSQL is not running" };
    const q = s.sql;
    const r: HostReport = {
      ...base,
      observed: q.inRecovery ? "standby" : "primary",
      timeline: q.timeline,
      lsn: q.lsn,
      startedAt: q.startedAt,
      ...(q.inRecovery ? { standbyReceivedLsn: q.receiveLsn, standbyReplayGapBytes: q.replayGapBytes, standbySinceLastReplaySeconds: q.replayLagSeconds } : {}),
    };
    if (q.inRecovery && h.role === "standby") {
      const lag = q.receiver !== null && q.replayGapBytes === 0 ? 0 : q.replayLagSeconds;
      r.appLagSeconds = lag === null ? null : Math.max(0, lag);
      r.withinLagLimit = lag !== null && lag <= spec.apps.maxLagSeconds;
    }
    if (h.role === "primary") {
      if (q.inRecovery) return { ...r, state: "running as standby", problem: "the inventory says primary but the server is in recovery" };
      return { ...r, state: "running", ok: true };
    }
    // Another cluster's primary on a standby's host: not a second primary of this one (setup refuses to touch it).
    if (!q.inRecovery && primarySql && q.sysid !== primarySql.sysid)
      return { ...r, state: "conflicting primary", problem: `the inventory says standby, but it runs the primary of another cluster (system identifier ${q.sysid}, not ${primarySql.sysid})` };
    if (!q.inRecovery)
      return {
        ...r,
        state: "split brain",
        problem: primarySql
          ? `it accepts writes, and so does ${spec.primary.name}, the inventory's primary: two primaries. The next pgrep command that changes the cluster stops it and marks it for pgrep rejoin ${h.name}`
          : `it accepts writes, but the inventory says standby (and ${spec.primary.name}, its primary, does not accept writes): was it promoted outside pgrep? Record it as the primary in the inventory, or pgrep rejoin ${h.name}`,
      };
    const d = primarySql ? divergence(primarySql, q.position) : undefined;
    if (d)
      return {
        ...r,
        state: "diverged",
        // Its data includes writes the primary never had: no reads should go there.
        appLagSeconds: null,
        withinLagLimit: false,
        problem: `it replayed ${bytes(d.beyond)} of timeline ${d.timeline} past ${d.switchpoint}, where ${spec.primary.name}'s timeline ${primarySql!.position.timeline} began: it cannot follow; needs pgrep rejoin ${h.name} (pg_rewind)`,
      };
    const up = snap.hosts.get(h.upstream ?? "");
    const upSql = up?.reachable ? (up as ReachableHost).sql : undefined;
    if (spec.slots && upSql) {
      const slot = upSql.slots.find((x) => x.name === slotName(h.name));
      r.slot = slot ? slot.name : "missing";
      r.slotRetainedBytes = slot?.retained_bytes ?? null;
      // 13+: the slot went past max_slot_wal_keep_size and the WAL the standby needs is gone.
      if (slot?.wal_status === "lost") return { ...r, state: "not streaming", problem: `its slot ${slot.name} on ${h.upstream} lost the WAL it needs; re-clone it (pgrep setup --force ${h.name})` };
    }
    const row = upSql?.replication.find((x) => x.application_name === h.name);
    if (!row) return { ...r, state: "not streaming", problem: `${h.upstream} shows no replication connection from it (receiver: ${q.receiver?.status ?? "none"})` };
    const state = row.state === "streaming" ? "streaming" : row.state === "catchup" ? "catchup" : "not streaming";
    return {
      ...r,
      state,
      ok: state === "streaming",
      // A standby ahead of its upstream (on another timeline) is not "negative bytes behind".
      lagBytes: row.lag_bytes === null ? null : Math.max(0, row.lag_bytes),
      lagSeconds: row.replay_lag_s ?? 0,
      syncState: row.sync_state,
      problem: state === "streaming" ? null : `walsender state is '${row.state}'`,
    };
  });
}

function describeError(host: string, e: Error): string {
  const msg = e.message.startsWith(`${host}: `) ? e.message.slice(host.length + 2) : e.message;
  return e instanceof PgrepError && e.hint ? `${msg} (${e.hint})` : msg;
}
