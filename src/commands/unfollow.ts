import { constants } from "node:fs";
import { access, cp, readFile, stat, writeFile } from "node:fs/promises";
import { observeAndFence } from "../apply/fence.js";
import { basename, dirname, join } from "node:path";
import { assessCluster } from "../cluster/assess.js";
import { formatStatusTable } from "../cluster/format.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import { observeCluster } from "../cluster/observe.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import { EXIT, InputError, PgrepError, RefusedError, type ExitCode } from "../errors.js";
import { executePlan } from "../apply/execute.js";
import { sqlTarget } from "../apply/context.js";
import { clusterFromText, shownPath } from "../inventory/index.js";
import { forkInventory, replaceInventory, withoutHost, type RoleChange } from "../inventory/update.js";
import { lineReporter, type Output } from "../output.js";
import { formatNotes, formatPhases, textDiff } from "../plan/format.js";
import { promoted, withHost } from "../plan/hypothetical.js";
import { fileTarget, planSetup } from "../plan/setup.js";
import type { Phase, Step } from "../plan/steps.js";
import { blockMarkers } from "../postgres/files.js";
import { effectiveMethod, promoteServer } from "../postgres/promote.js";
import { endWalsendersSql, slotName } from "../postgres/replication.js";
import { runSql, sqlLiteral } from "../postgres/sql.js";
import { loadAppPasswords, loadReplicationPassword } from "../secrets.js";
import { loadTls } from "../tls/material.js";
import { hostNamed, reachable } from "../session/hosts.js";
import { healthy, observeWith, openSession } from "../session/session.js";

export interface UnfollowCommandOptions {
  inventory: string;
  host: string;
  /** The new cluster's name (default: the host's). */
  name: string | undefined;
  /** Where its inventory goes (default: beside this one, named after the new cluster). */
  out: string | undefined;
  waitLock: number;
  dryRun: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/**
 * A standby leaves the cluster and becomes the primary of its own (a copy for analytics, staging, a risky
 * migration): promoted on a new timeline, gone from this inventory, pg_hba.conf and its upstream's slots,
 * and given an inventory of its own that pgrep keeps managing.
 */
export async function unfollowCommand(opts: UnfollowCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession({ ...opts, lock: opts.dryRun ? undefined : { waitSeconds: opts.waitLock } }, (spec) => {
    const h = hostNamed(spec, opts.host);
    if (h.role === "primary") throw new InputError(`${h.name} is the primary of cluster ${spec.name}; unfollow is for a standby`, `to move the primary elsewhere first: pgrep switchover <standby> -i ${shownPath(spec.inventoryFile)}`);
    if (spec.synchronous?.names.includes(h.name))
      throw new RefusedError(`${h.name} is named in replication.synchronous: commits could wait for a host that left`, "take it out of replication.synchronous and run pgrep setup first; nothing was changed");
  });
  try {
    const { spec } = session;
    const h = hostNamed(spec, opts.host);
    const name = opts.name ?? h.name;
    const forkFile = opts.out ?? join(dirname(spec.inventoryFile), `${name}.yml`);
    if (await stat(forkFile).then(() => true, () => false)) throw new InputError(`${forkFile} exists; pgrep will not write over it`, "pass --out FILE, or --name NAME for another file name");
    const snap = await observeAndFence(session, out, opts.dryRun);
    const S = reachable(snap, h.name);
    if (!S.running || !S.sql?.inRecovery) throw new RefusedError(`${h.name} is not running as a standby (${S.running ? "it accepts writes" : "PostgreSQL is stopped"})`, "pgrep setup brings it back as a standby first");
    // Its cascading standbys stream from its upstream instead: none is left without one.
    const downstream = spec.standbys.filter((x) => x.upstream === h.name);
    // Everything the leaving needs is checked before anything changes: the promotion cannot be undone.
    const U = hostNamed(spec, h.upstream!);
    const Us = reachable(snap, U.name);
    if (!Us.sql) throw new RefusedError(`${U.name}, which ${h.name} streams from, is not running: its slot for ${h.name} could not be let go`, "start it (pgrep setup), then unfollow again; nothing was changed");
    for (const d of downstream) reachable(snap, d.name);
    if (!opts.dryRun) await writable(spec.inventoryFile, forkFile);

    const repoint: RoleChange[] = downstream.map((x) => ({ host: x.name, role: "standby", upstream: h.upstream === spec.primary.name ? null : h.upstream! }));
    const before = await readFile(spec.inventoryFile, "utf8");
    const rest = withoutHost(spec.inventoryFile, before, h.name, repoint);
    const spec2 = clusterFromText(spec.inventoryFile, rest);
    const forkText = forkInventory(before, h.name, name);
    const fork = clusterFromText(forkFile, forkText);
    if (fork.name === spec.name) throw new InputError(`--name ${name}: that is this cluster's name; the new cluster needs its own`);

    // Its cascading standbys move before it is promoted: afterwards they would follow it onto its new
    // timeline, away from the cluster's.
    const names = downstream.map((x) => x.name).join(", ");
    const steps = [
      ...(downstream.length ? [`first: ${names} stream${downstream.length > 1 ? "" : "s"} from ${h.upstream} instead (cluster ${spec.name}'s setup without ${h.name})`] : []),
      `[${h.name}] promote it on a new timeline of its own — it leaves cluster ${spec.name} and takes writes`,
      `record: ${shownPath(spec.inventoryFile)} without ${h.name}${downstream.length ? `; ${names} stream${downstream.length > 1 ? "" : "s"} from ${h.upstream} instead` : ""}, and ${shownPath(forkFile)} for cluster ${name}`,
    ];
    if (opts.dryRun) {
      const lines = [`Unfollow ${h.name} from cluster ${spec.name} (dry run):`, ...steps.map((x) => `  ${x}`), ...textDiff(spec.inventoryFile, before, rest), ...textDiff(forkFile, "", forkText)];
      // What the setups after it would do, on what the hosts would look like by then.
      const left = withoutStandby(snap, h);
      const plan2 = planSetup(spec2, left, { force: new Set(), tls: session.tls });
      lines.push(`  then cluster ${spec.name}:`, ...(plan2.phases.length ? formatPhases(plan2.phases, left, true, "    ") : ["    (nothing else to change)"]), ...formatNotes(plan2.notes, "    "));
      // Read as the new cluster's primary (its roles and databases too, with the passwords that come along).
      const seen = await observeCluster(fork, session.conns, session.password, await loadAppPasswords(spec, false));
      const forkSnap = withHost(seen, h.name, (s) => ({ ...promoted(s), files: { ...s.files, hba: renamedBlock(s.files.hba, spec.name, name) } }));
      const plan3 = planSetup(fork, forkSnap, { force: new Set(), apps: true });
      lines.push(`  then cluster ${name}:`, ...formatPhases([...renameSteps(h, S, spec.name, name), ...plan3.phases], forkSnap, true, "    "));
      out.result(lines.join("\n"));
      out.progress("Dry run: nothing was changed.");
      return EXIT.ok;
    }

    out.progress([`Unfollow ${h.name} from cluster ${spec.name}:`, ...steps.map((x) => `  ${x}`)].join("\n"));
    const report = lineReporter(out);
    const converge = async () => {
      const now = await observeWith(session, spec2);
      const plan = planSetup(spec2, now, { force: new Set(), tls: session.tls });
      await executePlan(plan, { spec: spec2, snap: now, password: session.password!, tls: session.tls, report, streamTimeoutMs: opts.streamTimeoutSeconds * 1000 });
    };
    if (downstream.length) await converge();
    const w = await promoteServer(h, S, sqlTarget(h, S), effectiveMethod(spec.promoteMethod, S.caps));
    out.progress(`[${h.name}] ✓ promoted: takes writes on timeline ${w.timeline}, on its own`);
    // Past the point of no return: whatever fails now is reported as a role change that happened (exit 5),
    // with what finishes it.
    let recorded = false;
    try {
      // Its credentials come along (generated passwords, pgrep's CA): applications keep connecting to it.
      // Not the record of what pgrep created (for destroy), which stays with the cluster that made it.
      if (await stat(spec.stateDir).then(() => true, () => false))
        await cp(spec.stateDir, fork.stateDir, { recursive: true, force: false, filter: (src) => !basename(src).endsWith(".json") });
      await writeFile(forkFile, forkText, { mode: (await stat(spec.inventoryFile)).mode & 0o777, flag: "wx" });
      await replaceInventory(spec.inventoryFile, rest);
      recorded = true;
      out.progress(`Recorded: ${shownPath(spec.inventoryFile)} without ${h.name}; cluster ${name} in ${shownPath(forkFile)}.`);

      // Its upstream lets go of its slot: the slot is dropped, never left holding WAL.
      await letGo(U, Us, h.name, out);
      await converge();
      const left = (await runSql(sqlTarget(U, Us), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = ${sqlLiteral(slotName(h.name))}`)).trim();
      if (left !== "0") throw new PgrepError(`the slot ${slotName(h.name)} on ${U.name} is still there, holding WAL for a host that left`);

      const password = (await loadReplicationPassword(fork, true))!;
      const apps = await loadAppPasswords(fork, true);
      const tls = await loadTls(fork, true);
      const first = await observeCluster(fork, session.conns, password, apps);
      const F = reachable(first, h.name);
      await executePlan({ command: "unfollow", cluster: name, phases: renameSteps(h, F, spec.name, name) }, { spec: fork, snap: first, password, report, streamTimeoutMs: 0 });
      const forkSnap = await observeCluster(fork, session.conns, password, apps);
      const plan3 = planSetup(fork, forkSnap, { force: new Set(), tls, apps: true });
      await executePlan(plan3, { spec: fork, snap: forkSnap, password, appPasswords: apps, tls, report, streamTimeoutMs: opts.streamTimeoutSeconds * 1000 });

      const reports = assessCluster(spec2, await observeWith(session, spec2));
      const forkReports = assessCluster(fork, await observeCluster(fork, session.conns, password, apps));
      out.result([`Cluster ${spec.name}:`, formatStatusTable(reports), `Cluster ${name} (${shownPath(forkFile)}):`, formatStatusTable(forkReports)].join("\n"));
      if (!healthy(reports) || !healthy(forkReports)) throw new PgrepError(`not every host is in line (see the problems above)`);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      const finish = recorded
        ? `pgrep setup -i ${shownPath(spec.inventoryFile)} and pgrep setup -i ${shownPath(forkFile)} finish it`
        : `the inventories were not written: remove ${h.name} from ${shownPath(spec.inventoryFile)} by hand (pgrep unfollow --dry-run shows both files), then pgrep setup on each`;
      throw new PgrepError(`${h.name} was promoted and has left cluster ${spec.name}, but: ${why}`, { exitCode: EXIT.degraded, hint: finish, cause: e });
    }
    out.progress(`${h.name} is the primary of cluster ${name}: pgrep status -i ${shownPath(forkFile)}`);
    return EXIT.ok;
  } finally {
    await session.close();
  }
}

/** pgrep's pg_hba.conf block on the host now belongs to the new cluster (setup then rewrites its lines). */
function renamedBlock(hba: string | null, from: string, to: string): string | null {
  if (hba === null) return null;
  const a = blockMarkers(from);
  const b = blockMarkers(to);
  return hba.split("\n").map((l) => (l === a.begin ? b.begin : l === a.end ? b.end : l)).join("\n");
}

function renameSteps(h: HostSpec, s: ReachableHost, from: string, to: string): Phase[] {
  const renamed = renamedBlock(s.files.hba, from, to);
  if (renamed === null || renamed === s.files.hba) return [];
  const step: Step = {
    kind: "edit-file",
    host: h.name,
    file: fileTarget(h, s, s.layout.hbaFile, 0o640),
    edit: { type: "replace", content: renamed },
    why: `its pgrep block is now cluster ${to}'s`,
  };
  return [{ title: `${h.name} leaves cluster ${from}`, lanes: [{ host: h.name, steps: [step] }] }];
}

/** The snapshot as it will be once the host has left: its upstream's walsender and slot let go of it. */
function withoutStandby(snap: ClusterSnapshot, h: HostSpec): ClusterSnapshot {
  const hosts = new Map(snap.hosts);
  hosts.delete(h.name);
  const next = { ...snap, hosts };
  return withHost(next, h.upstream!, (u) =>
    u.sql ? { ...u, sql: { ...u.sql, replication: u.sql.replication.filter((r) => r.application_name !== h.name), slots: u.sql.slots.map((x) => (x.name === slotName(h.name) ? { ...x, active: false } : x)) } } : u,
  );
}

/**
 * The upstream's walsender for the host that left ends when the host's receiver does. One whose packets
 * are lost would last until wal_sender_timeout and keep the slot in use: after 5 s it is ended.
 */
async function letGo(u: HostSpec, U: ReachableHost, name: string, out: Output): Promise<void> {
  const [ended, left] = (await runSql(sqlTarget(u, U), endWalsendersSql(name, 5, 10), `letting go of ${name}`)).trim().split("\n");
  if (ended !== "0") out.progress(`[${u.name}] ended its walsender for ${name}, which had not seen it leave (its packets lost?)`);
  if (left !== "0") throw new PgrepError(`${u.name}'s walsender for ${name} did not end`);
}

/** Both inventories can be written: checked before the promotion, which cannot be undone. */
async function writable(inventory: string, fork: string): Promise<void> {
  for (const [path, what] of [[inventory, "the inventory"], [dirname(fork), "the new cluster's inventory's directory"]] as const)
    await access(path, constants.W_OK).catch(() => {
      throw new InputError(`${path}: ${what} cannot be written, so the unfollow could not be recorded`, "nothing was changed");
    });
}
