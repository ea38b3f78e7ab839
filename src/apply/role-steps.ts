import { ipFamily } from "../model/address.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import { debug } from "../debug.js";
import { EXIT, PgrepError, RefusedError } from "../errors.js";
import { loadCluster } from "../inventory/index.js";
import { recordTopology } from "../inventory/update.js";
import { formatNotes } from "../plan/format.js";
import { describeRoleStep, methodLabel, stepHost, type RoleStep } from "../plan/role-steps.js";
import { planMarkStandby, planSetup, rejoinMarker } from "../plan/setup.js";
import { stepCount } from "../plan/steps.js";
import { roleStepPatch, withHost, type Patch } from "../plan/hypothetical.js";
import { readControl } from "../postgres/control.js";
import { promoteServer, resumeReplay, withdrawPromotion } from "../postgres/promote.js";
import { rewind } from "../postgres/rewind.js";
import { runSql } from "../postgres/sql.js";
import { warmTemplates } from "../render/index.js";
import { lineReporter, type Output } from "../output.js";
import { hostNamed, reachable } from "../session/hosts.js";
import { observeWith, type Session } from "../session/session.js";
import { sqlTarget, type ExecContext } from "./context.js";
import { executePlan } from "./execute.js";
import { control, dropCopiedConninfo } from "./host-ops.js";
import { salvageWal } from "./salvage.js";

// The executor of role changes (promote, switchover, rejoin): it acts on the steps their planners made.

export function execContext(session: Session, spec: ClusterSpec, snap: ClusterSnapshot, out: Output, streamTimeoutMs: number): ExecContext {
  return { spec, snap, password: session.password!, tls: session.tls, report: lineReporter(out), streamTimeoutMs };
}

/** Bytes of WAL the standby has not replayed: against the primary's position when known, else what it received. */
export async function replayLag(h: HostSpec, s: ReachableHost, primaryLsn: string | undefined): Promise<number> {
  const q = primaryLsn
    ? `SELECT pg_wal_lsn_diff('${primaryLsn}', pg_last_wal_replay_lsn())`
    : "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())";
  return Math.max(0, Number((await runSql(sqlTarget(h, s), q)).trim() || 0));
}

/** Waits until the standby has replayed past `lsn` (the start of the old primary's shutdown checkpoint record). */
export async function waitReplayedPast(h: HostSpec, s: ReachableHost, lsn: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = (await runSql(sqlTarget(h, s), `SELECT pg_last_wal_replay_lsn() > '${lsn}'::pg_lsn`)).trim();
    if (r === "t") return;
    if (Date.now() > deadline) throw new PgrepError(`${h.name}: has not replayed past ${lsn} after ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/**
 * A standby whose replay someone paused would never reach the old primary's shutdown checkpoint, and on
 * 10–13 could not even be promoted: its replay goes on, and the log says so.
 */
async function resumePausedReplay(h: HostSpec, s: ReachableHost, out: Output): Promise<void> {
  if ((await resumeReplay(sqlTarget(h, s))).wasPaused) out.progress(`[${h.name}] its replay was paused: resumed, so that it catches up before it is promoted`);
}

/** The last checkpoint of a stopped server: after a clean shutdown, the last record its standbys need. */
export async function shutdownCheckpoint(s: ReachableHost): Promise<string> {
  const c = await readControl(s.transport, s.layout.dataDir, s.layout.admin);
  if (!c) throw new PgrepError(`${s.name}: cannot read global/pg_control`);
  return c.checkpointLsn;
}

export interface RoleRun {
  session: Session;
  /** The hosts the steps act on (at least); with `all`, only those. */
  snap: ClusterSnapshot;
  /** Every host, read once asked (after a promotion, or at the converge): the converge plans from it. */
  all?: () => Promise<ClusterSnapshot>;
  out: Output;
  streamTimeoutMs: number;
  /** How long a promotion may take before it is withdrawn (default 60 s). */
  promoteTimeoutMs?: number;
  onPromoted?: () => void;
}

/**
 * Runs a role change's steps in order. After a promotion, a failure further on says that the promotion
 * happened and is recorded, and what is left to do.
 */
export async function executeRoleSteps(run: RoleRun, steps: RoleStep[]): Promise<ClusterSpec> {
  const { session, out } = run;
  let spec = session.spec;
  const state = async (name: string) => reachable(run.snap, name);
  // The hosts as the steps so far have left them, while every step is one whose effect is known exactly
  // (a stop, a promotion): the converge then plans from it instead of reading every host again.
  let exact = true;
  const patches: [string, Patch][] = [];
  let promotedHost: string | undefined;
  // Hosts whose data is copied again (rejoin --allow-reclone, or after a failed pg_rewind).
  const reclone = new Set<string>();
  // Old primaries whose WAL could not be salvaged: they may hold what the new primary lacks.
  const unsalvaged = new Set<string>();
  let checkpointed: Promise<void> | undefined;
  for (const step of steps) {
    const host = stepHost(step);
    const log = (text: string) => out.progress(host ? `[${host}] ${text}` : text);
    const patch = roleStepPatch(step);
    if (patch) patches.push(patch);
    else if (step.kind !== "fence-command" && step.kind !== "record" && step.kind !== "converge") exact = false;
    try {
      switch (step.kind) {
        case "stop": {
          const S = await state(step.host);
          log(`${describeRoleStep(step)} — ${step.why}`);
          if (step.waitOn) await resumePausedReplay(hostNamed(spec, step.waitOn), await state(step.waitOn), out);
          await control(hostNamed(spec, step.host), S, "stop");
          if (step.waitOn) {
            // A clean stop sends the standbys everything up to the shutdown checkpoint: wait for it, lose nothing.
            const ckpt = await shutdownCheckpoint(S);
            try {
              await waitReplayedPast(hostNamed(spec, step.waitOn), await state(step.waitOn), ckpt, run.streamTimeoutMs);
            } catch (e) {
              // Promoting now could lose what it acknowledged: it runs as the primary again instead.
              out.progress(`[${step.host}] ${step.waitOn} did not get everything it wrote: starting it again as the primary`);
              await control(hostNamed(spec, step.host), S, "start");
              throw new PgrepError(`${(e as Error).message}; ${step.host} is the primary again and nothing was promoted`, { cause: e });
            }
            out.progress(`[${step.waitOn}] has replayed ${step.host}'s shutdown checkpoint ${ckpt}: nothing is lost`);
          }
          break;
        }
        case "fence-command":
          log(`${describeRoleStep(step)} — ${step.why}`);
          await runFenceCommand(spec.fenceCommand!, step.host, hostNamed(spec, step.host).address);
          log("✓ fenced");
          break;
        case "promote": {
          const h = hostNamed(spec, step.host);
          const T = await state(step.host);
          const started = Date.now();
          try {
            // The converge after it renders every host's files: the templates are compiled while the server
            // promotes and pgrep only waits (not before: that would hold up the promotion's own start).
            const templates = T.caps.standbyMechanism === "standby.signal" ? ["pgrep.conf", "pg_hba.block"] : ["pgrep.conf", "pg_hba.block", "recovery.conf"];
            const warm = steps.some((x) => x.kind === "converge") ? () => setImmediate(() => warmTemplates(templates)) : undefined;
            // The other hosts are read once the request is on the server, while it promotes and pgrep only
            // waits: not before, where the reads slowed the promotion's start.
            const onStarted = () => {
              warm?.();
              void run.all?.().catch(() => {});
            };
            const w = await promoteServer(h, T, sqlTarget(h, T), step.method, step.slots, onStarted, run.promoteTimeoutMs ?? 60_000);
            if (w.wasPaused) log("its replay was paused: resumed, so that it replays what it has received");
            if (w.unreplayedBytes > 0) log(`${w.unreplayedBytes} bytes had arrived but were not replayed yet: replayed before it became the primary`);
            log(`✓ promoted with ${methodLabel(step.method)}: accepts writes on timeline ${w.timeline} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
          } catch (e) {
            const isPrimary = await withdrawn(h, T, log);
            if (isPrimary) throw new PgrepError(`promoting ${h.name} reported a failure, but it accepts writes now: ${(e as Error).message}`, { cause: e });
            const back = step.restartOnFailure;
            if (!back) throw new PgrepError(`promoting ${h.name} failed: ${(e as Error).message}; the promote request was withdrawn and ${h.name} is still a standby: nothing was promoted`, { cause: e });
            out.progress(`[${back}] promotion of ${h.name} failed: starting ${back} again as the primary`);
            await control(hostNamed(spec, back), await state(back), "start");
            throw new PgrepError(`promoting ${h.name} failed: ${(e as Error).message}; ${back} is the primary again and ${h.name} a standby`, { cause: e });
          }
          promotedHost = step.host;
          // A checkpoint of the new timeline at once, beside the rest (PostgreSQL's own after a promotion
          // is spread over minutes): standbys replay it, so that their restartpoints, which pg_rewind (15
          // and older) takes a standby's timeline from, can be on this timeline should one diverge later.
          checkpointed = runSql(sqlTarget(h, T), "CHECKPOINT", "CHECKPOINT after the promotion").then(
            () => undefined,
            () => undefined,
          );
          run.onPromoted?.();
          break;
        }
        case "salvage": {
          log(`${describeRoleStep(step)} — ${step.why}`);
          const at = (name: string) => ({ h: hostNamed(spec, name), s: reachable(run.snap, name) });
          try {
            await salvageWal({ target: at(step.host), source: at(step.from), timeline: step.timeline, from: step.have, end: step.end, segmentSize: step.segmentSize, timeoutMs: run.streamTimeoutMs }, log);
            log(`✓ salvaged: it has replayed ${step.from}'s WAL up to ${step.end}, so nothing ${step.from} wrote is lost`);
          } catch (e) {
            unsalvaged.add(step.from);
            log(`salvaging failed (${(e as Error).message}): promoting it without that WAL; ${step.from} keeps it and waits for pgrep rejoin`);
          }
          break;
        }
        case "admit": {
          const now = await observeWith(session, spec);
          const plan = planSetup(spec, now, { force: new Set(), skip: new Set([step.host]), tls: session.tls });
          const first = plan.phases.filter((p) => p.lanes.length === 1 && p.lanes[0]!.host === spec.primary.name);
          if (first.length) {
            log(`${describeRoleStep(step)} — ${step.why}`);
            await executePlan({ ...plan, phases: first }, execContext(session, spec, now, out, run.streamTimeoutMs));
          }
          break;
        }
        case "checkpoint": {
          const h = hostNamed(spec, step.host);
          await runSql(sqlTarget(h, await state(step.host)), "CHECKPOINT");
          break;
        }
        case "rewind": {
          const h = hostNamed(spec, step.host);
          const S = await state(step.host);
          try {
            log(`${describeRoleStep(step)} — ${step.why}`);
            await rewind(spec, h, S, hostNamed(spec, step.from), async () => {
              log("it stopped uncleanly as a standby: started and stopped cleanly as one first");
              await control(h, S, "start");
              await control(h, S, "stop");
            });
            await dropCopiedConninfo(h, S);
            // It holds nothing the primary lacks any more: setup may start it as a standby.
            await S.transport.run(["rm", "-f", "--", rejoinMarker(S)], { user: S.layout.admin });
            log("✓ rewound: only the blocks that diverged were copied");
          } catch (e) {
            if (!step.allowReclone) throw new PgrepError(`${(e as Error).message}`, { hint: "pass --allow-reclone to copy the whole data directory from the primary instead", cause: e });
            log(`pg_rewind failed (${(e as Error).message}); re-cloning (--allow-reclone)`);
            reclone.add(h.name);
          }
          break;
        }
        case "reclone":
          log(`${describeRoleStep(step)} — ${step.why}`);
          reclone.add(step.host);
          break;
        case "record":
          await recordTopology(step.file, step.changes);
          out.progress(`Recorded in ${step.file}: ${step.changes.map((c) => `${c.host} is ${c.role === "primary" ? "the primary" : `a standby of ${c.upstream ?? "the primary"}`}`).join("; ")}.`);
          break;
        case "converge": {
          // An old primary that was to follow because its WAL was salvaged holds more than the new one.
          const c = step.markStandby && unsalvaged.has(step.markStandby) ? { ...step, rejoinLater: true, skip: [...new Set([...step.skip, step.markStandby])] } : step;
          const mark = c.markStandby && !reclone.has(c.markStandby) ? c.markStandby : undefined;
          const seen = run.all ? await run.all() : run.snap;
          const known = exact ? patches.reduce((sn, [h, p]) => withHost(sn, h, p), seen) : undefined;
          spec = await converge(session, spec.inventoryFile, out, { skip: new Set(c.skip), reclone, streamTimeoutMs: run.streamTimeoutMs, rejoinLater: !!c.rejoinLater, known, ...(mark ? { markStandby: mark } : {}) });
          if (mark && c.rejoinLater) out.progress(`[${mark}] is marked as a standby of ${spec.primary.name} that waits for: pgrep rejoin ${mark}`);
          break;
        }
      }
    } catch (e) {
      if (!promotedHost || step.kind === "promote") throw e;
      // The promotion itself happened and is recorded: say so plainly, and what is left to do. Exit 5
      // (degraded), whatever the cause: 3 and 4 would say that nothing changed.
      throw new PgrepError(`${promotedHost} is the primary (recorded in ${spec.inventoryFile}), but bringing the other hosts in line failed: ${(e as Error).message}`, {
        exitCode: EXIT.degraded,
        hint: "fix that host, then run pgrep setup with the same inventory to finish",
        cause: e,
      });
    }
  }
  await checkpointed;
  return spec;
}

async function converge(
  session: Session,
  inventoryFile: string,
  out: Output,
  opts: { skip: Set<string>; markStandby?: string; rejoinLater?: boolean; reclone: Set<string>; streamTimeoutMs: number; known?: ClusterSnapshot | undefined },
): Promise<ClusterSpec> {
  const spec = await loadCluster(inventoryFile);
  const reuse = opts.known && resolvesAll(spec, opts.known);
  debug(reuse ? "converge: planned from the hosts as read and as the steps left them" : "converge: reading every host again");
  let snap = reuse ? opts.known! : await observeWith(session, spec);
  const m = opts.markStandby ? snap.hosts.get(opts.markStandby) : undefined;
  // Marking writes the standby files whatever the host holds: only ever on a stopped server.
  if (m?.reachable && !m.running) {
    const steps = planMarkStandby(spec, snap, m.name, { rejoin: !!opts.rejoinLater });
    const phases = [{ title: "former primary", lanes: [{ host: m.name, steps }] }];
    await executePlan({ command: "mark", cluster: spec.name, phases }, execContext(session, spec, snap, out, opts.streamTimeoutMs));
    snap = await observeWith(session, spec);
  }
  // A host to copy again may hold anything (a failed rewind): it is forced as well as recloned.
  const plan = planSetup(spec, snap, { force: opts.reclone, reclone: opts.reclone, skip: opts.skip, tls: session.tls });
  if (plan.notes?.length) out.progress(formatNotes(plan.notes, "").join("\n"));
  if (stepCount(plan)) await executePlan(plan, execContext(session, spec, snap, out, opts.streamTimeoutMs));
  return spec;
}

/**
 * The (new) primary's state holds a lookup of every name its pg_hba.conf needs (it was observed as one
 * that resolves them), as a fresh observe would have.
 */
function resolvesAll(spec: ClusterSpec, snap: ClusterSnapshot): boolean {
  const P = snap.hosts.get(spec.primary.name);
  if (!P?.reachable) return false;
  return spec.hosts.every((h) => ipFamily(h.address) || !snap.hosts.get(h.name)?.reachable || h.address in P.resolved);
}

/**
 * After a failed promotion: the request is withdrawn (its files removed) before anything else happens, and
 * up to 12, where a signal already delivered promotes without its file, the server is restarted to drop
 * it. Says whether it accepts writes all the same (it promoted late).
 */
async function withdrawn(h: HostSpec, T: ReachableHost, log: (text: string) => void): Promise<boolean> {
  const writable = async () => (await runSql(sqlTarget(h, T), "SELECT NOT pg_is_in_recovery()").catch(() => "")).trim() === "t";
  await withdrawPromotion(h, T);
  if (await writable()) return true;
  if (!T.caps.promoteRequestNeedsFile) {
    log(`restarting it as a standby: on PostgreSQL ${T.caps.major} a promote signal it has not handled yet would still promote it`);
    await control(h, T, "restart");
  }
  log("the promote request was withdrawn: it stays a standby");
  return writable();
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

