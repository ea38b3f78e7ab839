import { assessCluster } from "../cluster/assess.js";
import type { ReachableHost } from "../cluster/state.js";
import { formatStatusTable } from "../cluster/format.js";
import { EXIT, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { sqlTarget } from "../plan/context.js";
import { control } from "../plan/host-ops.js";
import { effectiveMethod, promoteServer, waitWritable } from "../postgres/promote.js";
import { runSql } from "../postgres/sql.js";
import { hostNamed, observeWith, reachable, recordAndConverge, replayLag, shutdownCheckpoint, waitReplayedPast } from "./role-change.js";
import { healthy, openSession } from "./session.js";

const METHOD_LABEL = { pg_promote: "pg_promote()", pg_ctl: "pg_ctl promote", trigger_file: "the trigger file" } as const;

export interface PromoteCommandOptions {
  inventory: string;
  target: string;
  fence: boolean;
  force: boolean;
  oldPrimaryIsDown: boolean;
  maxLagBytes: number;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/** Makes a standby the primary without ever leaving two writable primaries unless told to. */
export async function promoteCommand(opts: PromoteCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession(opts, (spec) => hostNamed(spec, opts.target));
  try {
    const { spec } = session;
    const th = hostNamed(spec, opts.target);
    const snap = await session.observe();
    const T = reachable(snap, th.name);
    const old = spec.primary;
    if (th.role === "primary") {
      if (T.sql && !T.sql.inRecovery) {
        out.progress(`${th.name} already is the primary; nothing to do.`);
        return EXIT.ok;
      }
      throw new RefusedError(`${th.name} is the inventory's primary but is ${T.running ? "in recovery" : "not running"}`, "run pgrep status to see the cluster");
    }
    if (!T.sql) throw new RefusedError(`${th.name}: PostgreSQL is not running, so it cannot be promoted`, "start it, or promote another standby");

    const O = snap.hosts.get(old.name)!;
    const log = (host: string, text: string) => out.progress(`[${host}] ${text}`);
    let timeline: number | undefined;
    if (!T.sql.inRecovery) {
      log(th.name, "already promoted (not in recovery); recording the new topology");
    } else {
      // Split-brain guard: a reachable primary that accepts writes must be fenced first.
      let oldLsn: string | undefined;
      // Running but not answering queries counts as writable: nothing proves otherwise.
      if (O.reachable && O.running && !O.sql?.inRecovery) {
        oldLsn = O.sql?.lsn ?? undefined;
        const lag = await replayLag(th, T, oldLsn);
        log(th.name, `is ${lag} bytes behind ${old.name}`);
        if (lag > opts.maxLagBytes && !opts.force)
          throw new RefusedError(`${th.name} is ${lag} bytes behind ${old.name} (limit ${opts.maxLagBytes})`, "wait until it catches up (pgrep status), raise --max-lag-bytes, or --force");
        if (opts.fence) {
          log(old.name, "fencing: stopping PostgreSQL cleanly (--fence)");
          await control(O, "stop");
          // A clean stop sends the standbys everything up to the shutdown checkpoint: wait for it, lose nothing.
          const ckpt = await shutdownCheckpoint(O);
          await waitReplayedPast(th, T, ckpt, 60_000);
          log(th.name, `has replayed ${old.name}'s shutdown checkpoint ${ckpt}`);
        } else if (opts.force) {
          log(old.name, "WARNING: still running and writable (--force): there will be two primaries");
        } else {
          throw new RefusedError(
            `${old.name} is running and accepts writes; promoting ${th.name} now would make two primaries`,
            `--fence stops ${old.name} first (pgrep switchover ${th.name} is the planned way to swap roles); --force accepts two primaries`,
          );
        }
      } else if (!O.reachable) {
        if (spec.fenceCommand && !opts.oldPrimaryIsDown) {
          log(old.name, "unreachable: running the inventory's fence command");
          await runFenceCommand(spec.fenceCommand, old.name, old.address);
          log(old.name, "✓ fenced");
        } else if (!opts.oldPrimaryIsDown && !opts.force) {
          throw new RefusedError(
            `${old.name} cannot be reached (${O.error.message.replace(`${old.name}: `, "")}), which does not prove it is down`,
            `make sure ${old.name} is down or cut off from its clients, then pass --old-primary-is-down (or configure promote.fence_command)`,
          );
        } else log(old.name, "unreachable; taken as down (--old-primary-is-down)");
        const lag = await replayLag(th, T, undefined);
        if (lag > 0) log(th.name, `replaying the ${lag} bytes it received but has not applied yet`);
        const received = (await runSql(sqlTarget(th, T), "SELECT pg_last_wal_receive_lsn()")).trim();
        if (received) await waitReplayedPast(th, T, received, 60_000).catch(() => {});
      } else {
        log(old.name, O.running ? "is not writable (in recovery)" : "PostgreSQL is stopped");
      }
      const method = effectiveMethod(spec.promoteMethod, T.caps);
      const started = Date.now();
      await promoteServer(th, T, sqlTarget(th, T), method);
      const w = await waitWritable(th.name, sqlTarget(th, T), 120_000);
      timeline = w.timeline;
      log(th.name, `✓ promoted with ${METHOD_LABEL[method]}: accepts writes on timeline ${w.timeline} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }

    // Standbys that streamed from the old primary now stream from the new one. The old primary is left
    // alone (pgrep rejoin brings it back), but when pgrep can reach it, it is marked as a standby so that
    // starting it can never make a second primary.
    // Every standby streams from the primary (no cascading yet), so upstream keys are simply removed.
    const changes = [
      { host: th.name, role: "primary" as const, upstream: null },
      ...spec.hosts.filter((h) => h.name !== th.name).map((h) => ({ host: h.name, role: "standby" as const, upstream: null })),
    ];
    const oldStopped = O.reachable && !(await stillRunningPrimary(O));
    const spec2 = await recordAndConverge(session, changes, out, {
      skip: new Set([old.name]),
      ...(oldStopped ? { markStandby: old.name } : {}),
      streamTimeoutMs: opts.streamTimeoutSeconds * 1000,
    });
    if (oldStopped) log(old.name, `stopped and marked as a standby of ${th.name}; bring it back with: pgrep rejoin ${old.name}`);
    const reports = assessCluster(spec2, await observeWith(session, spec2));
    out.result(formatStatusTable(reports));
    if (timeline !== undefined) out.progress(`${th.name} is the primary (timeline ${timeline}).`);
    return healthy(reports.filter((r) => r.name !== old.name)) ? EXIT.ok : EXIT.degraded;
  } finally {
    await session.close();
  }
}

/** The inventory's fence command, on this machine; it must succeed before anything is promoted. */
async function runFenceCommand(command: string, name: string, address: string): Promise<void> {
  const { execa } = await import("execa");
  const r = await execa("sh", ["-c", command, "fence", name, address], { reject: false, timeout: 120_000, stdin: "ignore" });
  if (r.exitCode !== 0) {
    const why = String(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" | ");
    throw new RefusedError(`the fence command for ${name} failed (exit ${r.exitCode ?? r.signal})${why ? `: ${why}` : ""}; nothing was promoted`);
  }
}

async function stillRunningPrimary(s: ReachableHost): Promise<boolean> {
  const r = await s.transport.run(["sh", "-c", 'p=$(sed -n 1p "$1/postmaster.pid" 2>/dev/null); [ -n "$p" ] && kill -0 "$p" 2>/dev/null', "sh", s.layout.dataDir], {
    user: s.layout.admin,
    allowFailure: true,
  });
  return r.exitCode === 0;
}

