import type { ClusterSnapshot } from "../cluster/state.js";
import { EXIT, InputError, PgrepError, RefusedError, UnreachableError, type ExitCode } from "../errors.js";
import { loadCluster, shownPath } from "../inventory/index.js";
import type { ClusterSpec } from "../model/cluster.js";
import type { Output } from "../output.js";
import { cutoverSteps, migrateProblems, rollbackSteps, startSteps, type MigrateFacts } from "../plan/migrate.js";
import { slotName, type DatabaseFacts, type SchemaFacts } from "../postgres/logical.js";
import { queryJson } from "../postgres/sql.js";
import { openSession, type Session } from "../session/session.js";
import {
  allowWrites,
  closeAccess,
  createSlot,
  dropPrepared,
  dropSlot,
  setSubscriptionEnabled,
  refusesWrites,
  subscriptionState,
  copyRoles,
  copySchema,
  copySequences,
  ensureDatabase,
  hasSubscription,
  newMigratePassword,
  openAccess,
  readDatabases,
  readSchema,
  readSchemas,
  sameDatabases,
  refuseWrites,
  setPassfile,
  sideOf,
  slotsOf,
  subscribe,
  syncState,
  unsubscribe,
  vacuumAnalyze,
  verifyTables,
  waitConfirmed,
  walEnd,
  holdSnapshot,
  type HeldSnapshot,
  type Side,
} from "../apply/migrate.js";
import { debug } from "../debug.js";
import { setupCommand } from "./setup.js";

export interface MigrateCommandOptions {
  inventory: string;
  to: string;
  cutover: boolean;
  rollback: boolean;
  finish: boolean;
  dryRun: boolean;
  waitLock: number;
  acceptNewHostKeys: boolean;
  /** How long the first copy of every table may take. */
  syncTimeoutSeconds: number;
  /** How long a cut-over waits for the other side to apply the last write. */
  streamTimeoutSeconds: number;
  /** When the rows are checked: while writes are refused, or after, on snapshots of both sides taken in the pause. */
  check: "in-pause" | "after";
}

/**
 * Moves a cluster onto other hosts (a newer major) by logical replication: start (the new cluster set up,
 * the schema copied, every table replicated), --cutover (writes paused, every row checked, the new side
 * takes writes and replicates back), --rollback (back to the old side, nothing lost), --finish.
 */
export async function migrateCommand(opts: MigrateCommandOptions, out: Output): Promise<ExitCode> {
  if ([opts.cutover, opts.rollback, opts.finish].filter(Boolean).length > 1) throw new InputError("use one of --cutover, --rollback and --finish");
  const nextSpec = await loadCluster(opts.to);
  const oldS = await openSession({ inventory: opts.inventory, acceptNewHostKeys: opts.acceptNewHostKeys, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } }, (spec) => {
    if (spec.name === nextSpec.name) throw new InputError(`${opts.to} names cluster ${spec.name} too; the new cluster needs a name of its own`);
  });
  let newS: Session | undefined;
  try {
    const old = primarySide(oldS.spec, await oldS.observe());
    const dbs = await readDatabases(old);
    const schemas = await readSchemas(old, dbs);
    const cutOver = (await Promise.all(dbs.map((d) => hasSubscription(old, d.name)))).some(Boolean);
    const title = `Migration of cluster ${oldS.spec.name} to ${nextSpec.name}`;
    if ((opts.rollback || opts.finish) && !cutOver) throw new RefusedError(`${title}: not cut over (${old.host.name} does not replicate from ${nextSpec.primary.name}); nothing to ${opts.rollback ? "roll back" : "finish"}`);
    if (cutOver && opts.dryRun) {
      if (opts.rollback) return show(out, `${title}, rollback (dry run):`, rollbackSteps(oldS.spec, nextSpec));
      if (opts.finish) return show(out, `${title}, finish (dry run):`, [`[${old.host.name}] end the way back; [${nextSpec.primary.name}] remove the publications, the role and the pg_hba block; ${old.host.name} stays read-only`]);
    }
    if (cutOver) {
      newS = await openSession({ inventory: opts.to, acceptNewHostKeys: opts.acceptNewHostKeys, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } });
      const next = primarySide(newS.spec, await newS.observe());
      if (!opts.dryRun && (await resumeCutOver(old, next, dbs, schemas, out)) === "rolled-back") {
        out.result(`${title}: rolled back; ${old.host.name} takes writes.`);
        return EXIT.ok;
      }
      if (opts.rollback) return await rollback(old, next, dbs, out, opts);
      if (opts.finish) return await finish(old, next, dbs, out);
      out.result(`${title}: cut over already; ${nextSpec.primary.name} takes the writes and ${old.host.name} replicates from it. Next: --finish, or --rollback to go back.`);
      return EXIT.ok;
    }
    if (opts.cutover) {
      if (opts.dryRun) return show(out, `${title}, cut-over (dry run):`, cutoverSteps(oldS.spec, nextSpec));
      newS = await openSession({ inventory: opts.to, acceptNewHostKeys: opts.acceptNewHostKeys, lock: { waitSeconds: opts.waitLock } });
      const next = primarySide(newS.spec, await newS.observe());
      return await cutover(old, next, dbs, schemas, out, opts);
    }
    // Started before (its slots are on the old primary): the copy is shown, nothing is made twice.
    const slots = await slotsOf(old);
    const started = dbs.every((d) => slots[slotName("forward", d.oid)]);
    if (!started) {
      const facts = await readFacts(old, dbs, schemas);
      const problems = migrateProblems(oldS.spec, nextSpec, facts, shownPath(opts.inventory), shownPath(opts.to));
      if (problems.length) {
        out.result([`${title}: logical replication could not carry the data whole:`, ...problems.map((p) => `  - ${p}`)].join("\n"));
        throw new RefusedError(`${problems.length} problem${problems.length > 1 ? "s" : ""} to fix before the migration (listed above); nothing was changed`);
      }
      if (opts.dryRun) return show(out, `${title} (dry run):`, startSteps(oldS.spec, nextSpec, facts));
      out.progress([`${title}:`, ...startSteps(oldS.spec, nextSpec, facts).map((l) => `  ${l}`)].join("\n"));
      const set = await setupCommand({ inventory: opts.to, waitLock: opts.waitLock, dryRun: false, force: [], acceptNewHostKeys: opts.acceptNewHostKeys, streamTimeoutSeconds: opts.streamTimeoutSeconds, restartPrimary: "restart", resetAutoConf: false, maxLagBytes: 1024 * 1024 }, out);
      if (set !== EXIT.ok) throw new PgrepError(`setting up ${nextSpec.name} did not succeed (above); nothing was replicated yet`, { exitCode: set });
    }
    newS = await openSession({ inventory: opts.to, acceptNewHostKeys: opts.acceptNewHostKeys, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } });
    const next = primarySide(newS.spec, await newS.observe());
    if (!started) await start(old, next, dbs, schemas, out);
    return await waitSynced(old, next, dbs, out, opts.syncTimeoutSeconds, !started);
  } finally {
    await newS?.close();
    await oldS.close();
  }
}

function show(out: Output, title: string, steps: string[]): ExitCode {
  out.result([title, ...steps.map((l) => `  ${l}`)].join("\n"));
  out.progress("Dry run: nothing was changed.");
  return EXIT.ok;
}

function primarySide(spec: ClusterSpec, snap: ClusterSnapshot): Side {
  const s = snap.hosts.get(spec.primary.name)!;
  if (!s.reachable) throw s.error;
  if (!s.sql) throw new UnreachableError(spec.primary.name, `PostgreSQL does not answer on ${spec.primary.name}${s.sqlError ? `: ${s.sqlError}` : ""}`);
  if (s.sql.inRecovery) throw new RefusedError(`${spec.primary.name} is a standby, not the primary the inventory says; run pgrep status -i ${shownPath(spec.inventoryFile)}`);
  return sideOf(spec, s);
}

async function readFacts(old: Side, databases: DatabaseFacts[], schemas: Map<string, SchemaFacts>): Promise<MigrateFacts> {
  const f = await queryJson<{ wal: string; prepared: number; free: number }>(
    old.sql,
    "SELECT json_build_object('wal', current_setting('wal_level'), 'prepared', (SELECT count(*) FROM pg_prepared_xacts), 'free', current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots))",
    "reading the primary's settings",
  );
  return { walLevel: f.wal, databases, schemas, preparedXacts: f.prepared, freeSlots: f.free };
}

/** The addresses `of`'s primary has as `from` resolves its name: what from's pg_hba must admit. */
async function addressesOf(from: Side, of: Side): Promise<string[]> {
  const r = await from.state.transport.run(["getent", "ahosts", of.host.address], { what: `resolving ${of.host.address} on ${from.host.name}`, allowFailure: true });
  const found = [...new Set(r.stdout.split("\n").map((l) => l.split(/\s+/)[0]!).filter(Boolean))];
  if (!found.length) throw new PgrepError(`${from.host.name} cannot resolve ${of.host.address} (${of.host.name}'s address)`, { hint: "the two clusters' primaries must reach each other by the addresses their inventories give" });
  return found;
}

async function start(old: Side, next: Side, dbs: DatabaseFacts[], schemas: Map<string, SchemaFacts>, out: Output): Promise<void> {
  const subscribed = await Promise.all(dbs.map((d) => hasSubscription(next, d.name).catch(() => false)));
  const roles = await copyRoles(old, next);
  if (roles.length) out.progress(`[${next.host.name}] roles from ${old.host.name}: ${roles.join(", ")}`);
  for (const [i, d] of dbs.entries()) {
    if (subscribed[i]) continue;
    const made = await ensureDatabase(next, d);
    if (made === "has-tables") throw new RefusedError(`${next.host.name}: database ${d.name} has tables already; migrate copies the schema into an empty database`, `drop them on ${next.host.name}, or migrate to a new cluster`);
    await copySchema(old, next, d.name);
    out.progress(`[${next.host.name}] ${made === "made" ? "created database" : "schema into"} ${d.name}: ${schemas.get(d.name)!.tables.length} table(s) from ${old.host.name}`);
  }
  await refuseWrites(next);
  const password = newMigratePassword();
  await openAccess(old, await addressesOf(old, next), password, schemas);
  await setPassfile(next, old, password);
  for (const d of dbs) await subscribe(next, old, d, "forward", "copy");
  out.progress(`[${next.host.name}] subscribed ${dbs.map((d) => d.name).join(", ")} to ${old.host.name}; copying every table`);
}

/** `fresh`: the copy began in this run (its databases are vacuumed once copied). */
async function waitSynced(old: Side, next: Side, dbs: DatabaseFacts[], out: Output, seconds: number, fresh: boolean): Promise<ExitCode> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const states = await Promise.all(dbs.map((d) => syncState(next, d.name)));
    const pending = states.reduce((n, s) => n + Object.entries(s).reduce((m, [k, v]) => m + (k === "r" ? 0 : v), 0), 0);
    if (!pending) break;
    if (Date.now() > deadline) {
      await report(old, next, dbs, out);
      throw new PgrepError(`${pending} table(s) not copied yet after ${seconds} s; the copy goes on`, { exitCode: EXIT.degraded, hint: "run the same command again to see how far it is" });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (fresh) {
    for (const d of dbs) await vacuumAnalyze(next, d.name);
    out.progress(`[${next.host.name}] VACUUM ANALYZE of every database copied`);
  }
  await report(old, next, dbs, out);
  out.progress(`Every table is copied and kept up to date. When ready: pgrep migrate -i ${shownPath(old.spec.inventoryFile)} --to ${shownPath(next.spec.inventoryFile)} --cutover`);
  return EXIT.ok;
}

/** Per database: tables copied, and how far the subscriber is behind the old primary. */
async function report(old: Side, next: Side, dbs: DatabaseFacts[], out: Output): Promise<void> {
  const slots = await slotsOf(old);
  const lines = await Promise.all(
    dbs.map(async (d) => {
      const s = await syncState(next, d.name);
      const total = Object.values(s).reduce((a, b) => a + b, 0);
      const slot = slots[slotName("forward", d.oid)];
      const lag = slot ? `${slot.behind} bytes behind${slot.active ? "" : " (not connected)"}` : "no slot";
      return `  ${d.name}: ${s.r ?? 0}/${total} tables copied, ${lag}`;
    }),
  );
  out.result([`Replicating ${old.spec.name} (${old.host.name}) → ${next.spec.name} (${next.host.name}):`, ...lines].join("\n"));
}

/** Every table of every database counted and hashed on both sides (as held snapshots saw them, if given). */
async function checkTables(from: Side, to: Side, dbs: DatabaseFacts[], out: Output, held?: Map<string, { a: HeldSnapshot; b: HeldSnapshot }>): Promise<void> {
  const checking = Date.now();
  const checks = (await Promise.all(dbs.map(async (d) => verifyTables(from, to, d.name, (await readSchema(from, d.name)).tables, held?.get(d.name) && { a: held.get(d.name)!.a.id, b: held.get(d.name)!.b.id })))).flat();
  const bad = checks.filter((c) => c.differs);
  if (bad.length) throw new RefusedError(`the two sides differ${held ? " (as both were at the hand-over)" : ""}:\n${bad.map((c) => `  ${c.table}: ${c.differs}`).join("\n")}`);
  out.progress(`[${to.host.name}] ${checks.length} table(s), ${checks.reduce((n, c) => n + c.rows, 0)} rows, the same on both sides${held ? " as both were at the hand-over" : ""} (checked in ${((Date.now() - checking) / 1000).toFixed(1)} s)`);
}

/**
 * Writes stop on `from`; `to` applies all of it; sequences set; every table checked ("in-pause"), or both
 * sides' snapshots taken to be checked once `to` takes writes ("after": the check returned is to be run
 * then); then `inPause` (what must happen before `to` takes writes). Writes go back to `from` on any failure.
 */
async function handOver(from: Side, to: Side, dbs: DatabaseFacts[], direction: "forward" | "back", opts: MigrateCommandOptions, out: Output, inPause: () => Promise<void>): Promise<() => Promise<void>> {
  await refuseWrites(from);
  const held = new Map<string, { a: HeldSnapshot; b: HeldSnapshot }>();
  const release = () => Promise.allSettled([...held.values()].flatMap((h) => [h.a.release(), h.b.release()]));
  try {
    debug(`migrate: writes refused on ${from.host.name}`);
    const lsn = await walEnd(from);
    if (!(await waitConfirmed(from, dbs.map((d) => slotName(direction, d.oid)), lsn, opts.streamTimeoutSeconds)))
      throw new PgrepError(`${to.host.name} did not apply ${from.host.name}'s last write (${lsn}) within ${opts.streamTimeoutSeconds} s`, { exitCode: EXIT.degraded, hint: "see the migration with the same command without --cutover/--rollback; raise --stream-timeout" });
    debug(`migrate: ${to.host.name} applied up to ${lsn}`);
    let sequences = 0;
    for (const d of dbs) sequences += await copySequences(from, to, d.name);
    out.progress(`[${to.host.name}] applied everything up to ${lsn}; ${sequences} sequence(s) set`);
    if (opts.check === "in-pause") await checkTables(from, to, dbs, out);
    else for (const d of dbs) held.set(d.name, { a: await holdSnapshot(from, d.name), b: await holdSnapshot(to, d.name) });
    await inPause();
    debug(`migrate: ${to.host.name} takes writes`);
  } catch (e) {
    await release();
    await allowWrites(from);
    throw new PgrepError(`${(e as Error).message}\n${from.host.name} takes writes again; nothing else changed`, { exitCode: e instanceof PgrepError ? e.exitCode : EXIT.failed, cause: e });
  }
  return async () => {
    if (opts.check === "in-pause") return;
    try {
      await checkTables(from, to, dbs, out, held);
    } finally {
      await release();
    }
  };
}

/** The check run after the hand-over (--check after): a difference is said with where things stand. */
async function lateCheck(check: () => Promise<void>, state: string): Promise<void> {
  try {
    await check();
  } catch (e) {
    throw new PgrepError(`${(e as Error).message}\n${state}`, { exitCode: EXIT.refused, cause: e });
  }
}

/** After the new side took writes: the forward subscriptions, their slots and the old side's access removed (each step can run again). */
async function endForward(old: Side, next: Side, dbs: DatabaseFacts[], schemas: Map<string, SchemaFacts>): Promise<void> {
  for (const d of dbs) await unsubscribe(next, d.name);
  await closeAccess(old, schemas);
  await setPassfile(next, old, undefined);
}

/**
 * A cut-over interrupted inside its pause (pgrep killed, a connection lost) before the way back was
 * enabled: the forward subscriptions run again and the slots it made go, so that it can start over.
 * The old side may still refuse writes; the cut-over refuses them anyway, and gives them back on failure.
 */
async function repairInterruptedPause(old: Side, next: Side, dbs: DatabaseFacts[], out: Output): Promise<void> {
  let repaired = false;
  for (const d of dbs) {
    if ((await subscriptionState(next, d.name)) !== "disabled") continue;
    await setSubscriptionEnabled(next, d.name, true);
    repaired = true;
  }
  for (const d of await sameDatabases(next, dbs)) await dropSlot(next, d, "back");
  if (repaired) out.progress(`[${next.host.name}] an earlier cut-over stopped inside its pause: replicating from ${old.host.name} again, then the cut-over starts over`);
}

/**
 * The way back runs (a cut-over happened): an earlier command that stopped before its end is finished
 * first, by which side refuses writes. Both refuse: a pause was interrupted (the cut-over's end, or a
 * rollback's start); the new side takes writes again, having everything it had. Only the new side
 * refuses: a rollback stopped after the old side took writes; its end is done. Both take writes: refused.
 */
async function resumeCutOver(old: Side, next: Side, dbs: DatabaseFacts[], schemas: Map<string, SchemaFacts>, out: Output): Promise<"cut-over" | "rolled-back"> {
  const [oldRo, nextRo] = await Promise.all([refusesWrites(old), refusesWrites(next)]);
  if (!oldRo && !nextRo) throw new RefusedError(`${old.host.name} and ${next.host.name} both take writes while ${old.host.name} replicates from ${next.host.name}: pgrep will not choose`, "make one refuse writes (ALTER SYSTEM SET default_transaction_read_only = on, then SELECT pg_reload_conf()), then run this again");
  if (!oldRo && nextRo) {
    await endBack(old, next, dbs);
    out.progress(`Finished a rollback that had stopped after ${old.host.name} took writes again`);
    return "rolled-back";
  }
  // The way back whole first: a pause may have stopped between two databases. While the new side refuses
  // writes, a slot made now misses nothing; once it takes them, every slot was made before.
  const nextDbs = await sameDatabases(next, dbs);
  for (const d of nextDbs) {
    if (nextRo) await createSlot(next, d, "back");
    if ((await subscriptionState(old, d.name)) === "disabled") await setSubscriptionEnabled(old, d.name, true);
  }
  if (nextRo) {
    await allowWrites(next);
    out.progress(`[${next.host.name}] takes writes again: an earlier cut-over or rollback stopped inside its pause (a cut-over run with --check after did not check its rows)`);
  }
  await endForward(old, next, dbs, schemas);
  return "cut-over";
}

/** After the old side took writes again: the way back, the new side's access and the old side's .pgpass line removed. */
async function endBack(old: Side, next: Side, dbs: DatabaseFacts[]): Promise<void> {
  const nextDbs = await sameDatabases(next, dbs);
  for (const d of dbs) await unsubscribe(old, d.name);
  await closeAccess(next, await readSchemas(next, nextDbs));
  await setPassfile(old, next, undefined);
}

async function cutover(old: Side, next: Side, dbs: DatabaseFacts[], schemas: Map<string, SchemaFacts>, out: Output, opts: MigrateCommandOptions): Promise<ExitCode> {
  await repairInterruptedPause(old, next, dbs, out);
  for (const d of dbs) {
    const s = await syncState(next, d.name);
    if (!(await hasSubscription(next, d.name)) || Object.keys(s).some((k) => k !== "r"))
      throw new RefusedError(`${d.name} is not copied and replicating yet on ${next.host.name}; run pgrep migrate -i ${shownPath(opts.inventory)} --to ${shownPath(opts.to)} first`);
  }
  // The way back made before the pause: the new primary publishes, the old one's subscriptions wait
  // (no slot, disabled); only their slots are made in the pause, before the first write on the new side.
  const nextDbs = await sameDatabases(next, dbs);
  const nextSchemas = await readSchemas(next, nextDbs);
  const password = newMigratePassword();
  await openAccess(next, await addressesOf(next, old), password, nextSchemas);
  await setPassfile(old, next, password);
  for (const d of nextDbs) await subscribe(old, next, d, "back", "prepared");
  const paused = Date.now();
  out.progress(`[${old.host.name}] writes refused`);
  let check: () => Promise<void>;
  try {
    check = await handOver(old, next, dbs, "forward", opts, out, async () => {
      for (const d of dbs) await setSubscriptionEnabled(next, d.name, false);
      debug("migrate: forward subscriptions disabled");
      for (const d of nextDbs) await createSlot(next, d, "back");
      // Enabled before the new side's first write: a cut-over interrupted from here on is finished by
      // the next run (see resumeCutOver), never left with writes on the new side and no way back.
      for (const d of nextDbs) await setSubscriptionEnabled(old, d.name, true);
      debug("migrate: the way back made and enabled");
      await allowWrites(next);
    });
  } catch (e) {
    // Back to replicating forward, and nothing of the way back left.
    const undo = async () => {
      for (const d of dbs) await setSubscriptionEnabled(next, d.name, true);
      for (const d of nextDbs) await dropPrepared(old, d.name);
      for (const d of nextDbs) await dropSlot(next, d, "back");
      await closeAccess(next, nextSchemas);
      await setPassfile(old, next, undefined);
    };
    await undo().catch((u) => out.progress(`Could not remove the prepared way back: ${(u as Error).message}`));
    throw e;
  }
  const pause = (Date.now() - paused) / 1000;
  await endForward(old, next, dbs, schemas);
  out.result(`Cut over: ${next.host.name} (${next.spec.name}) takes writes; ${old.host.name} is read-only and replicates from it, for --rollback. Writes were refused for ${pause.toFixed(1)} s.`);
  await lateCheck(check, `the cut-over is done: ${next.host.name} takes writes; pgrep migrate --rollback goes back to ${old.host.name} with them`);
  out.progress(`Applications: pgrep app-config -i ${shownPath(opts.to)} --format … (a connection string listing both primaries with target_session_attrs=read-write follows by itself). Then --finish, or --rollback.`);
  return EXIT.ok;
}

async function rollback(old: Side, next: Side, dbs: DatabaseFacts[], out: Output, opts: MigrateCommandOptions): Promise<ExitCode> {
  const nextDbs = await sameDatabases(next, dbs);
  const paused = Date.now();
  out.progress(`[${next.host.name}] writes refused`);
  const check = await handOver(next, old, nextDbs, "back", opts, out, () => allowWrites(old));
  const pause = (Date.now() - paused) / 1000;
  // The new side refuses writes: the way back carries nothing more, and ends after the pause.
  await endBack(old, next, dbs);
  out.result(`Rolled back: ${old.host.name} (${old.spec.name}) takes writes again, with everything written on ${next.host.name}; ${next.spec.name} stays read-only. Writes were refused for ${pause.toFixed(1)} s.`);
  await lateCheck(check, `the rollback is done: ${old.host.name} takes writes`);
  return EXIT.ok;
}

async function finish(old: Side, next: Side, dbs: DatabaseFacts[], out: Output): Promise<ExitCode> {
  await endBack(old, next, dbs);
  out.result(`Finished: ${next.spec.name} is the cluster; ${old.host.name} no longer replicates and stays read-only (pgrep destroy -i ${shownPath(old.spec.inventoryFile)} when it is no longer wanted).`);
  return EXIT.ok;
}
