import { assessCluster } from "../cluster/assess.js";
import { formatStatusTable } from "../cluster/format.js";
import { EXIT, PgrepError, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { sqlTarget } from "../plan/context.js";
import { control } from "../plan/host-ops.js";
import { effectiveMethod, promoteServer, waitWritable } from "../postgres/promote.js";
import { runSql } from "../postgres/sql.js";
import { hostNamed, observeWith, reachable, recordAndConverge, replayLag, shutdownCheckpoint, waitReplayedPast } from "./role-change.js";
import { healthy, openSession, requireAllReachable } from "./session.js";

export interface SwitchoverCommandOptions {
  inventory: string;
  target: string;
  maxLagBytes: number;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/**
 * Planned, lossless role swap: the primary stops cleanly, the target replays its shutdown checkpoint, is
 * promoted, and the old primary follows it (no rewind is needed after a clean shutdown). If promotion
 * fails, the old primary is started again, so there is always exactly one writable primary.
 */
export async function switchoverCommand(opts: SwitchoverCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession(opts, (spec) => hostNamed(spec, opts.target));
  try {
    const { spec } = session;
    const th = hostNamed(spec, opts.target);
    const old = spec.primary;
    if (th.role === "primary") {
      out.progress(`${th.name} already is the primary; nothing to do.`);
      return EXIT.ok;
    }
    const snap = await session.observe();
    requireAllReachable(snap);
    const T = reachable(snap, th.name);
    const O = reachable(snap, old.name);
    const state = assessCluster(spec, snap);
    const bad = state.filter((r) => !r.ok);
    if (bad.length) throw new RefusedError(`the cluster is not healthy: ${bad.map((r) => `${r.name} ${r.state}`).join(", ")}`, "a switchover starts from a healthy cluster; run pgrep status");
    const lag = await replayLag(th, T, O.sql!.lsn ?? undefined);
    if (lag > opts.maxLagBytes) throw new RefusedError(`${th.name} is ${lag} bytes behind ${old.name} (limit ${opts.maxLagBytes})`, "wait until it catches up, or raise --max-lag-bytes");
    const log = (host: string, text: string) => out.progress(`[${host}] ${text}`);

    const pauseStarted = Date.now();
    log(old.name, "stopping PostgreSQL cleanly: writes pause from here");
    await control(O, "stop");
    let timeline: number;
    try {
      const ckpt = await shutdownCheckpoint(O);
      await waitReplayedPast(th, T, ckpt, 60_000);
      log(th.name, `has replayed ${old.name}'s shutdown checkpoint ${ckpt}: nothing is lost`);
      const method = effectiveMethod(spec.promoteMethod, T.caps);
      await promoteServer(th, T, sqlTarget(th, T), method);
      timeline = (await waitWritable(th.name, sqlTarget(th, T), 120_000)).timeline;
    } catch (e) {
      const promoted = (await runSql(sqlTarget(th, T), "SELECT NOT pg_is_in_recovery()").catch(() => "")).trim() === "t";
      if (promoted) throw new PgrepError(`${(e as Error).message}; ${th.name} did become writable, ${old.name} stays stopped`, { cause: e });
      log(old.name, "switchover failed: starting it again as the primary");
      await control(O, "start");
      throw new PgrepError(`switchover to ${th.name} failed: ${(e as Error).message}; ${old.name} is the primary again and ${th.name} a standby`, { cause: e });
    }
    log(th.name, `✓ is the primary (timeline ${timeline}); writes resume (paused ${((Date.now() - pauseStarted) / 1000).toFixed(1)} s)`);

    const changes = [
      { host: th.name, role: "primary" as const, upstream: null },
      ...spec.hosts.filter((h) => h.name !== th.name).map((h) => ({ host: h.name, role: "standby" as const, upstream: null })),
    ];
    const spec2 = await recordAndConverge(session, changes, out, { skip: new Set(), markStandby: old.name, streamTimeoutMs: opts.streamTimeoutSeconds * 1000 });
    const reports = assessCluster(spec2, await observeWith(session, spec2));
    out.result(formatStatusTable(reports));
    return healthy(reports) ? EXIT.ok : EXIT.degraded;
  } finally {
    await session.close();
  }
}
