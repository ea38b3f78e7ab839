import type { HostSpec, PromoteMethod } from "../cluster/model.js";
import type { ReachableHost } from "../cluster/state.js";
import { PgrepError } from "../errors.js";
import { runSql, type SqlTarget } from "./sql.js";
import type { Capabilities } from "./versions.js";

export type Method = Exclude<PromoteMethod, "auto">;

/** auto: pg_promote() where it exists (12+), otherwise pg_ctl promote. */
export function effectiveMethod(wanted: PromoteMethod, caps: Capabilities): Method {
  if (wanted !== "auto") return wanted;
  return caps.hasPgPromote ? "pg_promote" : "pg_ctl";
}

/**
 * Promotes the server and returns once it takes a write (an xid is assigned), with its new timeline.
 * With pg_promote() the wait happens in the same session, checked every 10 ms (pg_promote's own wait checks
 * every 100 ms), so the write is proven in one round trip.
 */
export async function promoteServer(h: HostSpec, s: ReachableHost, sql: SqlTarget, method: Method, timeoutMs = 120_000): Promise<Writable> {
  switch (method) {
    case "trigger_file":
      // The standby's configuration names this file (trigger_file / promote_trigger_file); it is polled.
      await s.transport.run(["touch", s.layout.triggerFile], { user: h.pg.osUser, what: "creating the trigger file" });
      return waitWritable(h.name, sql, timeoutMs);
    case "pg_promote": {
      const ticks = Math.ceil(timeoutMs / 10);
      const out = await runSql(
        sql,
        `SELECT pg_promote(false);
DO $pgrep$ BEGIN FOR i IN 1..${ticks} LOOP EXIT WHEN NOT pg_is_in_recovery(); PERFORM pg_sleep(0.01); END LOOP; END $pgrep$;
${WRITE_PROOF};`,
        "pg_promote()",
      );
      const w = parseWriteProof(out.split("\n").at(-1) ?? "");
      if (!w) throw new PgrepError(`${h.name}: still not accepting writes ${Math.round(timeoutMs / 1000)} s after pg_promote() (${out.trim()})`);
      return w;
    }
    case "pg_ctl": {
      const c = s.layout.control.promote;
      await s.transport.run(c.argv, { user: c.user, what: "pg_ctl promote", timeoutMs: 180_000 });
      return waitWritable(h.name, sql, timeoutMs);
    }
  }
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
