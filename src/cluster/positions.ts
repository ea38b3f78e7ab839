import { lsnValue } from "../postgres/control.js";
import type { Capabilities } from "../postgres/versions.js";
import type { HostState, Position, PositionRead, SqlState } from "./state.js";

// Where each server is in the WAL: what a failover compares, and what tells a diverged standby. The SQL
// runs on 10–18 (pg_ls_waldir 10+, pg_stat_wal_receiver.received_tli 10+).

/** The newest timeline the server knows of from the history files in its pg_wal (1 when there are none). */
const HISTORY_TLI = `(SELECT coalesce(max(('x' || substr(name, 1, 8))::bit(32)::int), 1) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{8}\\.history$')`;

/**
 * A server's timeline: a primary's is the one it writes; a standby's the one its WAL receiver receives, or
 * (no receiver, e.g. its upstream is gone) the newest it knows from its last checkpoint and history files.
 */
export const TIMELINE_SQL = `CASE WHEN pg_is_in_recovery()
      THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), greatest((SELECT timeline_id FROM pg_control_checkpoint()), ${HISTORY_TLI}))
      ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END`;

/** The history of a primary's timeline (its parents and where each ended), when it is not the first. */
export const HISTORY_SQL = `CASE WHEN NOT pg_is_in_recovery() AND ${TIMELINE_SQL} > 1
      THEN pg_read_file('pg_wal/' || lpad(upper(to_hex(${TIMELINE_SQL})), 8, '0') || '.history') END`;

/** The JSON fields of a server's position, for json_build_object. */
export function positionFieldsSql(caps: Capabilities): string {
  return `'in_recovery', pg_is_in_recovery(),
  'timeline', ${TIMELINE_SQL},
  'receive_lsn', pg_last_wal_receive_lsn()::text,
  'replay_lsn', pg_last_wal_replay_lsn()::text,
  'current_lsn', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
  'receiver_position', (SELECT json_build_object('status', status, 'received_tli', received_tli, 'flushed', ${caps.receiverFlushColumn}::text) FROM pg_stat_wal_receiver)`;
}

/** The light read a promotion makes of the standbys it does not act on: their position alone. */
export function positionSql(caps: Capabilities): string {
  return `SELECT json_build_object(${positionFieldsSql(caps)})`;
}

export interface RawPosition {
  in_recovery: boolean;
  timeline: number;
  receive_lsn: string | null;
  replay_lsn: string | null;
  current_lsn: string | null;
  receiver_position: { status: string; received_tli: number | null; flushed: string | null } | null;
}

/** Timeline switches from a history file: each line is "parentTLI switchpoint reason". */
export function parseHistory(text: string | null | undefined): { tli: number; switchpoint: string }[] {
  if (!text) return [];
  return text
    .split("\n")
    .map((l) => /^\s*(\d+)\s+([0-9A-F]+\/[0-9A-F]+)/i.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ tli: Number(m[1]), switchpoint: m[2]!.toUpperCase() }));
}

/** The higher of two LSNs (null when both are). */
export function maxLsn(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return lsnValue(a) >= lsnValue(b) ? a : b;
}

export function positionFrom(name: string, raw: RawPosition): Position {
  const rx = raw.receiver_position;
  return {
    name,
    inRecovery: raw.in_recovery,
    timeline: raw.timeline,
    // What is on its disk: received WAL, or (its receiver not started since it restarted) what it replayed.
    received: raw.in_recovery ? maxLsn(raw.receive_lsn, raw.replay_lsn) : raw.current_lsn,
    replayed: raw.in_recovery ? raw.replay_lsn : raw.current_lsn,
    streaming: rx?.status === "streaming",
  };
}

/** Bytes from b up to a (negative when a is before b). */
export function lsnDiff(a: string, b: string): number {
  return Number(lsnValue(a) - lsnValue(b));
}

/** A full observe's host state as a position read: the position, or why there is none. */
export function positionRead(s: HostState): PositionRead {
  if (!s.reachable) return { name: s.name, position: undefined, why: `unreachable: ${s.error.message.replace(`${s.name}: `, "")}` };
  const at = s.readAt ? { readAt: s.readAt } : {};
  if (!s.running) return { name: s.name, position: undefined, why: "PostgreSQL is not running", ...at };
  if (!s.sql) return { name: s.name, position: undefined, why: `cannot query: ${s.sqlError ?? "no psql"}`, ...at };
  return { name: s.name, position: s.sql.position, needsRejoin: s.needsRejoin, ...at };
}

/**
 * Where a standby left the primary's history, when it did: it replayed WAL of an older timeline past the
 * point where the primary's timeline forked from it, so it cannot follow the primary without a rewind.
 */
export function divergence(primary: SqlState, standby: Position): { timeline: number; switchpoint: string; beyond: number } | undefined {
  if (!standby.inRecovery || primary.inRecovery || standby.timeline >= primary.position.timeline || standby.replayed === null) return undefined;
  const fork = primary.history.find((e) => e.tli === standby.timeline);
  if (!fork) return undefined;
  const beyond = lsnDiff(standby.replayed, fork.switchpoint);
  return beyond > 0 ? { timeline: standby.timeline, switchpoint: fork.switchpoint, beyond } : undefined;
}
