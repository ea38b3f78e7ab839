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

export async function promoteServer(h: HostSpec, s: ReachableHost, sql: SqlTarget, method: Method): Promise<void> {
  switch (method) {
    case "trigger_file":
      // The standby's configuration names this file (trigger_file / promote_trigger_file); it is polled.
      await s.transport.run(["touch", s.layout.triggerFile], { user: h.pg.osUser, what: "creating the trigger file" });
      return;
    case "pg_promote": {
      const ok = (await runSql(sql, "SELECT pg_promote(true, 60)", "pg_promote()")).trim();
      if (ok !== "t") throw new PgrepError(`${h.name}: pg_promote() did not finish within 60 s`);
      return;
    }
    case "pg_ctl": {
      const c = s.layout.control.promote;
      await s.transport.run(c.argv, { user: c.user, what: "pg_ctl promote", timeoutMs: 180_000 });
      return;
    }
  }
}

/** Returns once the server takes a write (an xid is assigned), with its new timeline. */
export async function waitWritable(host: string, sql: SqlTarget, timeoutMs: number): Promise<{ timeline: number; lsn: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await runSql(
      sql,
      `SELECT CASE WHEN pg_is_in_recovery() THEN 'recovery' ELSE txid_current()::text || ' ' || ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int || ' ' || pg_current_wal_lsn() END`,
    ).catch((e: Error) => `error ${e.message}`);
    const [xid, timeline, lsn] = r.trim().split(" ");
    if (/^\d+$/.test(xid ?? "")) return { timeline: Number(timeline), lsn: lsn! };
    if (Date.now() > deadline) throw new PgrepError(`${host}: still not accepting writes after ${Math.round(timeoutMs / 1000)} s (${r.trim()})`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
