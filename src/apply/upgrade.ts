import { posix } from "node:path";
import type { HostSpec } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { CommandError, EXIT, lastLines, PgrepError, RefusedError } from "../errors.js";
import { cleanlyShutDown, readControl } from "../postgres/control.js";
import { runSql, waitUntilSql } from "../postgres/sql.js";
import { carriedConfig, initdbOptions, pgUpgradeArgv, rsyncMoved, upgradeRsyncArgv, type OldClusterFacts } from "../postgres/upgrade.js";
import type { Capabilities } from "../postgres/versions.js";
import { recordCreated } from "../state-store.js";
import { readFileText, writeFileAtomic } from "../transport/files.js";
import { shellCommand } from "../transport/quote.js";
import { allowCopy } from "./clone.js";
import { sqlTarget, type ExecContext } from "./context.js";
import { control } from "./host-ops.js";

// The steps of a major upgrade on the hosts. Up to the new primary's first start, every change can be
// undone: rollBack puts the old cluster back on every host.

/** One host at both majors: its inventory entries and what was read at each major's paths. */
export interface UpgradeHost {
  spec: HostSpec;
  old: ReachableHost;
  next: ReachableHost;
}

const LONG_MS = 6 * 3600_000;

/** Runs a script as the PostgreSQL OS user; the error carries its last lines. */
async function asPostgres(u: UpgradeHost, script: string, args: string[], what: string): Promise<string> {
  const r = await u.old.transport.run(["sh", "-c", script, "sh", ...args], { user: u.spec.pg.osUser, what, allowFailure: true, timeoutMs: LONG_MS });
  if (r.exitCode !== 0) throw new PgrepError(`${u.spec.name}: ${what} failed: ${lastLines(`${r.stdout}\n${r.stderr}`, 12)}`);
  return r.stdout;
}

// pg_upgrade's own findings are in files of its output directory: shown when it fails.
const SHOW_FINDINGS = `find "$d" -name '*.txt' -newer "$d/.start" 2>/dev/null | while read -r f; do echo "== $(basename "$f"):"; head -n 20 "$f"; done`;

/**
 * pg_upgrade --check against the running old cluster, with a throw-away new cluster made beside the old
 * data (the same file system, as --link needs). Nothing of the real cluster changes. null: it passed.
 */
export async function pgUpgradeCheck(P: UpgradeHost, facts: OldClusterFacts, next: Capabilities, preload: string[]): Promise<string | null> {
  const parent = posix.dirname(P.old.layout.dataDir);
  const argv = pgUpgradeArgv({ oldBin: P.old.layout.binDir, newBin: P.next.layout.binDir, oldData: P.old.layout.dataDir, newData: DATA, oldConf: confOutsideData(P.old), newConf: null, oldPort: P.spec.pg.port, check: true });
  const script = [
    `d=$(mktemp -d ${shellCommand([parent])}/.pgrep-upgrade-check.XXXXXX) || exit 1; trap 'rm -rf "$d"' EXIT; touch "$d/.start"`,
    `${shellCommand([posix.join(P.next.layout.binDir, "initdb"), "-D", DATA, ...initdbOptions(facts, next)]).replaceAll(DATA, '"$d/data"')} >"$d/initdb.log" 2>&1 || { tail -n 5 "$d/initdb.log"; exit 1; }`,
    preload.length ? `echo ${shellCommand([`shared_preload_libraries = '${preload.join(",")}'`])} >> "$d/data/postgresql.conf"` : ":",
    `cd "$d" && ${shellCommand(argv).replaceAll(DATA, '"$d/data"')} > "$d/out.log" 2>&1; rc=$?`,
    `if [ $rc -ne 0 ]; then grep -v '^\\s*$' "$d/out.log" | tail -n 15; ${SHOW_FINDINGS}; fi; exit $rc`,
  ].join("\n");
  const r = await P.old.transport.run(["sh", "-c", script], { user: P.spec.pg.osUser, what: "pg_upgrade --check", allowFailure: true, timeoutMs: 600_000 });
  return r.exitCode === 0 ? null : `${P.spec.name}: pg_upgrade --check found problems:\n${(r.stdout + r.stderr).trim()}`;
}

/** Stands for the throw-away data directory in a command line (a word the quoting leaves as it is). */
const DATA = "@PGREP_CHECK_DATA@";

/** postgresql.conf's path when it is not in the data directory (Debian), else null. */
function confOutsideData(s: ReachableHost): string | null {
  return s.layout.mainConf.startsWith(`${s.layout.dataDir}/`) ? null : s.layout.mainConf;
}

/**
 * Stops the primary cleanly while its standbys run, so that each receives and replays its shutdown
 * checkpoint; then the standbys. Refused (and everything started again) unless every standby's latest
 * checkpoint is the primary's: only then is the standbys' --size-only copy safe.
 */
export async function stopInStep(P: UpgradeHost, standbys: UpgradeHost[], waitSeconds: number, say: (text: string) => void): Promise<string> {
  try {
    return await stopAndCompare(P, standbys, waitSeconds, say);
  } catch (e) {
    if (e instanceof StartedAgain) throw e.reason;
    // Anything else on the way (a stop that failed, pg_control unreadable): the hosts stopped so far start again.
    const started = await Promise.allSettled([P, ...standbys].map((u) => control(u.spec, u.old, "start")));
    const left = started.map((r, i) => (r.status === "rejected" && !/already running/i.test(String(r.reason)) ? [P, ...standbys][i]!.spec.name : "")).filter(Boolean);
    throw new PgrepError(`${(e as Error).message}\n${left.length ? `not started again: ${left.join(", ")} (see pgrep status)` : "every host was started again as it was; nothing else changed"}`, { exitCode: e instanceof PgrepError ? e.exitCode : EXIT.failed, cause: e });
  }
}

/** A refusal of stopAndCompare's, after it started the hosts again itself. */
class StartedAgain extends Error {
  constructor(readonly reason: Error) {
    super(reason.message);
  }
}

async function stopAndCompare(P: UpgradeHost, standbys: UpgradeHost[], waitSeconds: number, say: (text: string) => void): Promise<string> {
  await control(P.spec, P.old, "stop");
  const pc = await readControl(P.old.transport, P.old.layout.dataDir, P.old.layout.admin);
  if (!pc || !cleanlyShutDown(pc)) {
    await startOld([P, ...standbys]);
    throw new StartedAgain(new PgrepError(`${P.spec.name}: PostgreSQL did not shut down cleanly; it was started again, nothing else changed`));
  }
  say(`[${P.spec.name}] stopped at checkpoint ${pc.checkpointLsn}`);
  const caughtUp = `pg_last_wal_replay_lsn() > '${pc.checkpointLsn}'::pg_lsn`;
  await Promise.all(standbys.map((s) => runSql(sqlTarget(s.spec, s.old), waitUntilSql(caughtUp, waitSeconds), "waiting for the primary's last checkpoint").catch(() => "")));
  // Every stop ended before anything else happens: a host still stopping must not be started meanwhile.
  const stops = await Promise.allSettled(standbys.map((s) => control(s.spec, s.old, "stop")));
  const failed = stops.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  const behind: string[] = [];
  for (const s of standbys) {
    const c = await readControl(s.old.transport, s.old.layout.dataDir, s.old.layout.admin);
    if (!c || c.checkpointLsn !== pc.checkpointLsn || !cleanlyShutDown(c)) behind.push(`${s.spec.name} at ${c ? c.checkpointLsn : "(unreadable pg_control)"}`);
  }
  if (behind.length) {
    await startOld([P, ...standbys]);
    throw new StartedAgain(new RefusedError(
      `not upgrading: the standbys' latest checkpoint must be ${P.spec.name}'s (${pc.checkpointLsn}), and ${behind.join(", ")} ${behind.length > 1 ? "are" : "is"} not; copied by size alone, such a standby would be corrupt`,
      "the cluster was started again as it was; see why the standby is behind (pgrep status), then run the upgrade again",
    ));
  }
  return pc.checkpointLsn;
}

export async function startOld(hosts: UpgradeHost[]): Promise<void> {
  for (const u of hosts) await control(u.spec, u.old, "start");
}

/** The new major's configuration directory (Debian), carried from the old one: see carriedConfig. */
async function carryConfig(u: UpgradeHost, from: number, to: number): Promise<string[]> {
  const oldDir = posix.dirname(u.old.layout.mainConf);
  const newDir = posix.dirname(u.next.layout.mainConf);
  if (oldDir === u.old.layout.dataDir) return [];
  await u.old.transport.run(["sh", "-c", 'set -e; mkdir -p "$(dirname "$2")"; cp -a -- "$1" "$2"; chown "$3:" "$(dirname "$2")"', "sh", oldDir, newDir, u.spec.pg.osUser], { user: u.old.layout.admin, what: "copying the configuration" });
  const files = (await u.old.transport.run(["sh", "-c", 'ls -1 "$1/postgresql.conf" "$1"/conf.d/*.conf 2>/dev/null; true', "sh", newDir], { user: u.old.layout.admin })).stdout.split("\n").filter(Boolean);
  const dropped: string[] = [];
  for (const f of files) dropped.push(...(await carryFile(u, f, from, to)));
  return dropped;
}

async function carryFile(u: UpgradeHost, path: string, from: number, to: number): Promise<string[]> {
  const text = await readFileText(u.old.transport, path, u.old.layout.admin);
  if (text === null) return [];
  const carried = carriedConfig(text, from, to, u.spec.pg.clusterName);
  if (carried.text !== text) await writeFileAtomic(u.old.transport, path, carried.text, { owner: `${u.spec.pg.osUser}:`, mode: path.endsWith("postgresql.auto.conf") ? 0o600 : 0o644, asUser: u.old.layout.admin });
  return carried.dropped;
}

/** initdb of the new cluster, its configuration carried, then pg_upgrade --link. */
export async function upgradePrimary(P: UpgradeHost, facts: OldClusterFacts, from: number, to: number, next: Capabilities): Promise<string[]> {
  const nd = P.next.layout.dataDir;
  const inData = confOutsideData(P.next) === null;
  await asPostgres(P, `set -e; mkdir -p "$(dirname "$1")"; shift; "$@" >/dev/null`, [nd, posix.join(P.next.layout.binDir, "initdb"), "-D", nd, ...initdbOptions(facts, next)], "initdb of the new cluster");
  const dropped = await carryConfig(P, from, to);
  if (!inData) await asPostgres(P, 'rm -f -- "$1/postgresql.conf" "$1/pg_hba.conf" "$1/pg_ident.conf"', [nd], "removing initdb's configuration (it lives in /etc)");
  // ALTER SYSTEM's settings come along too.
  const auto = await readFileText(P.old.transport, `${P.old.layout.dataDir}/postgresql.auto.conf`, P.old.layout.admin);
  if (auto) {
    const carried = carriedConfig(auto, from, to, P.spec.pg.clusterName);
    dropped.push(...carried.dropped);
    await writeFileAtomic(P.old.transport, `${nd}/postgresql.auto.conf`, carried.text, { owner: `${P.spec.pg.osUser}:`, mode: 0o600, asUser: P.old.layout.admin });
  }
  const argv = pgUpgradeArgv({ oldBin: P.old.layout.binDir, newBin: P.next.layout.binDir, oldData: P.old.layout.dataDir, newData: nd, oldConf: confOutsideData(P.old), newConf: confOutsideData(P.next), oldPort: P.spec.pg.port, check: false });
  const script = [
    `d=$(mktemp -d "$(dirname "$1")/.pgrep-upgrade.XXXXXX") || exit 1; touch "$d/.start"; shift`,
    `cd "$d" && "$@" > "$d/out.log" 2>&1; rc=$?`,
    `if [ $rc -ne 0 ]; then grep -v '^\\s*$' "$d/out.log" | tail -n 15; ${SHOW_FINDINGS.replace('"$d"', `"$d" ${shellCommand([nd])}`)}; fi`,
    `rm -rf "$d"; exit $rc`,
  ].join("\n");
  await asPostgres(P, script, [nd, ...argv], "pg_upgrade --link");
  return [...new Set(dropped)];
}

/** A standby's new data directory from the primary: both majors' directories in one rsync (hard links). */
export async function upgradeStandby(ctx: ExecContext, s: UpgradeHost, P: UpgradeHost, from: number, to: number, next: Capabilities): Promise<{ sent: number; total: number } | undefined> {
  await carryConfig(s, from, to);
  let moved: { sent: number; total: number } | undefined;
  const trust = await allowCopy(ctx, s.spec, s.old, P.spec, P.old);
  try {
    const argv = upgradeRsyncArgv(P.old.layout.dataDir, P.next.layout.dataDir, trust.login, trust.rsyncArgs);
    const r = await s.old.transport.run(argv, { user: s.spec.pg.osUser, what: `rsync from ${P.spec.name}`, allowFailure: true, timeoutMs: LONG_MS });
    if (r.exitCode !== 0) throw new CommandError(r, `rsync from ${P.spec.name}`);
    moved = rsyncMoved(r.stdout);
  } finally {
    await trust.revoke();
  }
  // Standby mode; setup writes where to stream from before it starts.
  const marker = next.standbyMechanism === "standby.signal" ? "standby.signal" : "recovery.conf";
  await writeFileAtomic(s.old.transport, `${s.next.layout.dataDir}/${marker}`, "", { owner: `${s.spec.pg.osUser}:`, mode: 0o600, asUser: s.old.layout.admin });
  return moved;
}

/**
 * Puts the old cluster back: pg_control renamed back where pg_upgrade had renamed it, the new data and
 * configuration directories (which did not exist before) removed. Then the old cluster starts.
 */
export async function rollBack(hosts: UpgradeHost[]): Promise<string[]> {
  const said: string[] = [];
  for (const u of hosts) {
    const confDir = posix.dirname(u.next.layout.mainConf);
    const r = await u.old.transport.run(
      ["sh", "-c", 'g="$1/global"; if [ -e "$g/pg_control.old" ] && [ ! -e "$g/pg_control" ]; then mv "$g/pg_control.old" "$g/pg_control" && echo renamed; fi; rm -rf -- "$2"; [ "$3" = "$2" ] || rm -rf -- "$3"', "sh", u.old.layout.dataDir, u.next.layout.dataDir, confDir],
      { user: u.old.layout.admin, what: "putting the old cluster back" },
    );
    said.push(`${u.spec.name}: ${r.stdout.includes("renamed") ? "global/pg_control.old renamed back; " : ""}${u.next.layout.dataDir} removed`);
  }
  await startOld(hosts);
  return said;
}

/** The old major's cluster stays on disk but is not started again by the OS (Debian's start.conf). */
export async function retireOld(ctx: ExecContext, u: UpgradeHost, to: number): Promise<void> {
  const confDir = posix.dirname(u.old.layout.mainConf);
  if (confDir !== u.old.layout.dataDir) await writeFileAtomic(u.old.transport, `${confDir}/start.conf`, "manual\n", { owner: `${u.spec.pg.osUser}:`, mode: 0o644, asUser: u.old.layout.admin });
  await recordCreated(ctx.spec.stateDir, { host: u.spec.name, kind: "data_dir", path: u.next.layout.dataDir, ...(u.spec.pg.layout === "debian" ? { debianCluster: `${to}/${u.spec.pg.clusterName}` } : {}) });
}

/** The planner's statistics, rebuilt in stages (quick ones first) on the new primary. */
export async function rebuildStatistics(P: UpgradeHost, next: Capabilities): Promise<void> {
  const vacuumdb = posix.join(P.next.layout.binDir, "vacuumdb");
  await asPostgres(
    P,
    'f="$1/postmaster.pid"; { read -r _; read -r _; read -r _; read -r p; read -r h; } < "$f"; shift; "$@" -h "${h:-/tmp}" -p "$p" >/dev/null',
    [P.next.layout.dataDir, vacuumdb, "--all", "--analyze-in-stages", ...(next.upgradeKeepsStatistics ? ["--missing-stats-only"] : [])],
    "vacuumdb --analyze-in-stages",
  );
}
