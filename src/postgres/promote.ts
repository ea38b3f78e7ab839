import type { HostSpec, PromoteMethod } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { PgrepError } from "../errors.js";
import { createSlotsSql } from "./replication.js";
import { runSql, waitUntilSql, type SqlTarget } from "./sql.js";
import type { Capabilities } from "./versions.js";

export type Method = Exclude<PromoteMethod, "auto">;

/** auto: pg_promote() where it exists (12+), otherwise pg_ctl promote. */
export function effectiveMethod(wanted: PromoteMethod, caps: Capabilities): Method {
  if (wanted !== "auto") return wanted;
  return caps.hasPgPromote ? "pg_promote" : "pg_ctl";
}

/**
 * Promotes the server and returns once it takes a write (an xid is assigned), with its new timeline. A
 * paused replay is resumed first (10–13 cannot be promoted while paused, and what it has received is
 * replayed before it ends recovery). With pg_promote() all of it happens in one session, and the end of
 * recovery is checked every 10 ms (pg_promote's own wait checks every 100 ms): one round trip.
 */
export async function promoteServer(h: HostSpec, s: ReachableHost, sql: SqlTarget, method: Method, slots: readonly string[] = [], onStarted?: () => void, timeoutMs = 120_000): Promise<Promoted> {
  // The slots its standbys will stream through are made first (a standby may have slots): the standbys
  // can follow the moment it is promoted.
  if (method === "pg_promote") {
    const before = `${RESUME_REPLAY}\n${slots.length ? `${createSlotsSql(slots)}\n` : ""}`;
    const out = await runSql(
      sql,
      `${before}SELECT pg_promote(false);
${waitUntilSql("NOT pg_is_in_recovery()", timeoutMs / 1000)}
${WRITE_PROOF};`,
      "pg_promote()",
      onStarted,
    );
    const lines = out.split("\n");
    const w = parseWriteProof(lines.at(-1) ?? "");
    if (!w) throw new PgrepError(`${h.name}: still not accepting writes ${Math.round(timeoutMs / 1000)} s after pg_promote() (${lines.at(-1) ?? ""})`);
    return { ...w, ...parseResume(lines[0] ?? "") };
  }
  if (slots.length) await runSql(sql, createSlotsSql(slots), "replication slots");
  const replay = await resumeReplay(sql);
  if (method === "trigger_file") {
    // The standby's configuration names this file (trigger_file / promote_trigger_file); it is polled.
    await s.transport.run(["touch", s.layout.triggerFile], { user: h.pg.osUser, what: "creating the trigger file" });
  } else {
    const c = s.layout.control.promote;
    await s.transport.run(c.argv, { user: c.user, what: "pg_ctl promote", timeoutMs });
  }
  onStarted?.();
  return { ...(await waitWritable(h.name, sql, timeoutMs)), ...replay };
}

/**
 * Takes back a promote request the server has not acted on: its signal files and the trigger file go, so
 * that a server that did not promote in time cannot become a second primary later.
 */
export async function withdrawPromotion(h: HostSpec, s: ReachableHost): Promise<void> {
  const d = s.layout.dataDir;
  await s.transport.run(["rm", "-f", "--", `${d}/promote`, `${d}/fallback_promote`, s.layout.triggerFile], { user: h.pg.osUser, what: "withdrawing the promote request" });
}

// "resumed N" or "replaying N": whether replay was paused, and the bytes received but not yet replayed.
const RESUME_REPLAY =
  "SELECT CASE WHEN pg_is_wal_replay_paused() THEN (SELECT 'resumed' FROM pg_wal_replay_resume()) ELSE 'replaying' END || ' ' || coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0);";

/** Resumes a paused replay; says whether it was paused, and how much it has received but not replayed. */
export async function resumeReplay(sql: SqlTarget): Promise<{ wasPaused: boolean; unreplayedBytes: number }> {
  return parseResume(await runSql(sql, RESUME_REPLAY, "resuming replay"));
}

function parseResume(line: string): { wasPaused: boolean; unreplayedBytes: number } {
  const [state, bytes] = line.trim().split(" ");
  return { wasPaused: state === "resumed", unreplayedBytes: Math.max(0, Number(bytes) || 0) };
}

export interface Promoted extends Writable {
  wasPaused: boolean;
  /** Received but not yet replayed when it was asked to promote: replayed before recovery ended. */
  unreplayedBytes: number;
}

export interface Writable {
  timeline: number;
  lsn: string;
}

// A new transaction (each statement is one): one begun in recovery stays read-only even after promotion.
const WRITE_PROOF = `SELECT CASE WHEN pg_is_in_recovery() THEN 'recovery' ELSE txid_current()::text || ' ' || ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int || ' ' || pg_current_wal_lsn() END`;

function parseWriteProof(line: string): Writable | undefined {
  const [xid, timeline, lsn] = line.trim().split(" ");
  return /^\d+$/.test(xid ?? "") ? { timeline: Number(timeline), lsn: lsn! } : undefined;
}

/** Returns once the server takes a write (an xid is assigned), with its new timeline. */
export async function waitWritable(host: string, sql: SqlTarget, timeoutMs: number): Promise<Writable> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await runSql(sql, WRITE_PROOF).catch((e: Error) => `error ${e.message}`);
    const w = parseWriteProof(r);
    if (w) return w;
    if (Date.now() > deadline) throw new PgrepError(`${host}: still not accepting writes after ${Math.round(timeoutMs / 1000)} s (${r.trim()})`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
