import { assessCluster } from "../cluster/assess.js";
import { formatStatusTable } from "../cluster/format.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import type { ClusterSpec } from "../model/cluster.js";
import { readHostFacts, readPrimaryFacts, type HostUpgradeFacts } from "../cluster/upgrade-facts.js";
import { EXIT, InputError, PgrepError, RefusedError, type ExitCode } from "../errors.js";
import { executePlan } from "../apply/execute.js";
import { sqlTarget, type ExecContext } from "../apply/context.js";
import { pgUpgradeCheck, rebuildStatistics, retireOld, rollBack, stopInStep, upgradePrimary, upgradeStandby, type UpgradeHost } from "../apply/upgrade.js";
import { clusterFromText } from "../inventory/index.js";
import { loadInventoryText } from "../inventory/load.js";
import { replaceInventory, withMajor } from "../inventory/update.js";
import { lineReporter, type Output } from "../output.js";
import { formatPlan } from "../plan/format.js";
import { planSetup } from "../plan/setup.js";
import { upgradeProblems, upgradeProcedure, type UpgradeFacts } from "../plan/upgrade.js";
import { capabilities, isSupportedMajor, SUPPORTED_MAJORS } from "../postgres/versions.js";
import { healthy, observeWith, openSession, requireAllReachable } from "../session/session.js";

export interface UpgradeCommandOptions {
  inventory: string;
  major: number;
  /** Read only: report every problem an upgrade would meet, exit 4 when any. */
  check: boolean;
  dryRun: boolean;
  waitLock: number;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/**
 * A major upgrade in place: pg_upgrade --link on the primary, the standbys brought along by rsync of hard
 * links (never copied again), then setup at the new major. Refused with nothing changed when any check
 * fails; rolled back on failure until the new primary first starts.
 */
export async function upgradeCommand(opts: UpgradeCommandOptions, out: Output): Promise<ExitCode> {
  if (!isSupportedMajor(opts.major)) throw new InputError(`--major ${opts.major}: not a supported PostgreSQL major (${SUPPORTED_MAJORS[0]}–${SUPPORTED_MAJORS.at(-1)})`);
  const readOnly = opts.check || opts.dryRun;
  const text = await loadInventoryText(opts.inventory);
  const nextText = withMajor(opts.inventory, text, opts.major);
  // The inventory must make sense at the new major (its settings, its promotion method) before anything.
  let nextSpec: ClusterSpec;
  try {
    nextSpec = clusterFromText(opts.inventory, nextText);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    throw new InputError(`${e.message.split("\n").map((l) => `${l} (at PostgreSQL ${opts.major})`).join("\n")}`, "change the inventory first: the upgrade rewrites only postgres.major");
  }
  const session = await openSession({ inventory: opts.inventory, acceptNewHostKeys: opts.acceptNewHostKeys, lock: readOnly ? undefined : { waitSeconds: opts.waitLock } }, (spec) => {
    const now = spec.primary.pg.major;
    if (now !== undefined && opts.major <= now) throw new InputError(`--major ${opts.major}: the inventory says the cluster runs PostgreSQL ${now}; an upgrade goes to a newer major`);
  });
  try {
    const { spec } = session;
    const old = await session.observe();
    requireAllReachable(old);
    const next = await observeWith(session, nextSpec);
    const facts = await gatherFacts(session.spec, old, next, opts.major);
    const problems = upgradeProblems(spec, facts);
    const newCaps = capabilities(opts.major);
    const P = upgradeHost(spec.primary, old, next);
    if (!problems.length && P && facts.primary) {
      const found = await pgUpgradeCheck(P, facts.primary, newCaps, facts.hosts.get(spec.primary.name)?.preload ?? []);
      if (found) problems.push(found);
    }
    const title = `PostgreSQL ${facts.from} → ${opts.major}, cluster ${spec.name}`;
    if (problems.length) {
      out.result([`${title}: the upgrade would not succeed:`, ...problems.map((p) => `  - ${p.replaceAll("\n", "\n    ")}`)].join("\n"));
      throw new RefusedError(`${problems.length} problem${problems.length > 1 ? "s" : ""} to fix before the upgrade (listed above); nothing was changed`);
    }
    const procedure = upgradeProcedure(spec, facts, newCaps);
    if (opts.check) {
      out.result(`${title}: every check passed (binaries, pg_upgrade --check, libraries and extensions on every host, disk, collation, transactions, standbys streaming).`);
      return EXIT.ok;
    }
    if (opts.dryRun) {
      out.result([`${title}: the upgrade would do:`, ...procedure.map((l) => `  ${l}`)].join("\n"));
      out.progress("Dry run: nothing was changed (pg_upgrade --check ran against a throw-away cluster, removed again).");
      return EXIT.ok;
    }
    out.progress([`${title}:`, ...procedure.map((l) => `  ${l}`)].join("\n"));
    return await runUpgrade(session, { spec, nextSpec, nextText, old, next, facts, out, opts });
  } finally {
    await session.close();
  }
}

async function gatherFacts(spec: ClusterSpec, old: ClusterSnapshot, next: ClusterSnapshot, to: number): Promise<UpgradeFacts> {
  const P = old.hosts.get(spec.primary.name) as ReachableHost;
  const primary = P.sql && !P.sql.inRecovery ? await readPrimaryFacts(sqlTarget(spec.primary, P), P.caps) : undefined;
  const hosts = new Map<string, HostUpgradeFacts>();
  await Promise.all(
    spec.hosts.map(async (h) => {
      const u = upgradeHost(h, old, next);
      if (u) hosts.set(h.name, await readHostFacts(h, u.old, u.next, primary?.extensions.keys() ?? []));
    }),
  );
  return { from: old.major, to, old, next, primary, hosts };
}

function upgradeHost(h: UpgradeHost["spec"], old: ClusterSnapshot, next: ClusterSnapshot): UpgradeHost | undefined {
  const o = old.hosts.get(h.name);
  const n = next.hosts.get(h.name);
  return o?.reachable && n?.reachable ? { spec: h, old: o, next: n } : undefined;
}

interface Run {
  spec: ClusterSpec;
  nextSpec: ClusterSpec;
  nextText: string;
  old: ClusterSnapshot;
  next: ClusterSnapshot;
  facts: UpgradeFacts;
  out: Output;
  opts: UpgradeCommandOptions;
}

async function runUpgrade(session: Awaited<ReturnType<typeof openSession>>, r: Run): Promise<ExitCode> {
  const { spec, nextSpec, out, facts } = r;
  const from = facts.from;
  const to = r.opts.major;
  const newCaps = capabilities(to);
  const report = lineReporter(out);
  const hosts = spec.hosts.map((h) => upgradeHost(h, r.old, r.next)!);
  const P = hosts.find((u) => u.spec === spec.primary)!;
  const standbys = hosts.filter((u) => u !== P);
  const ctx: ExecContext = { spec, snap: r.old, password: session.password!, tls: session.tls, report, streamTimeoutMs: r.opts.streamTimeoutSeconds * 1000 };
  const down = Date.now();
  await stopInStep(P, standbys, r.opts.streamTimeoutSeconds, (t) => out.progress(t));
  let plan;
  try {
    out.progress(`[${P.spec.name}] initdb and pg_upgrade --link`);
    const dropped = await upgradePrimary(P, facts.primary!, from, to, newCaps);
    if (dropped.length) out.progress(`[${P.spec.name}] commented out in the carried configuration (PostgreSQL ${to} does not have them): ${dropped.join(", ")}`);
    out.progress(`[${P.spec.name}] ✓ pg_upgrade --link (${((Date.now() - down) / 1000).toFixed(1)} s since the stop)`);
    const copies = await Promise.allSettled(
      standbys.map(async (s) => {
        const t = Date.now();
        out.progress(`[${s.spec.name}] rsync --hard-links --size-only from ${P.spec.name}`);
        const moved = await upgradeStandby(ctx, s, P, from, to, newCaps);
        const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
        // rsync counts both directories' files (each linked file twice): the sent part is what travelled.
        const what = moved ? `: ${mb(moved.sent)} sent, of ${mb(moved.total)} in the two data directories; the rest is linked to its own files` : "";
        out.progress(`[${s.spec.name}] ✓ rsync from ${P.spec.name}${what} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
      }),
    );
    const failed = copies.find((c): c is PromiseRejectedResult => c.status === "rejected");
    if (failed) throw failed.reason;
    // Planned before the inventory changes or anything starts: a refusal still rolls back.
    plan = planSetup(nextSpec, await observeWith(session, nextSpec), { force: new Set(), tls: session.tls, restartPrimary: "restart" });
  } catch (e) {
    out.progress(`The upgrade failed: putting PostgreSQL ${from} back on every host.`);
    let said: string[];
    try {
      said = await rollBack(hosts);
    } catch (back) {
      throw new PgrepError(`${(e as Error).message}\nputting the old cluster back failed too: ${(back as Error).message}`, {
        hint: `by hand, on each host: rename ${P.old.layout.dataDir}/global/pg_control.old back to pg_control if it is there, remove ${P.next.layout.dataDir}, start PostgreSQL ${from}`,
      });
    }
    throw new PgrepError(`${(e as Error).message}\nrolled back: ${said.join("; ")}; PostgreSQL ${from} runs again on every host`, { exitCode: e instanceof PgrepError ? e.exitCode : EXIT.failed, cause: e });
  }
  // From here the new cluster is the cluster: the inventory says so before it first starts.
  await replaceInventory(spec.inventoryFile, r.nextText);
  for (const u of hosts) await retireOld(ctx, u, to);
  const snap = await observeWith(session, nextSpec);
  let up: number | undefined;
  const watch = { ...report, done: (host: string, text: string, ms: number) => { if (host === P.spec.name && text.startsWith("start") && up === undefined) up = Date.now(); report.done(host, text, ms); } };
  try {
    out.progress(formatPlan(plan, snap, false));
    await executePlan(plan, { ...ctx, spec: nextSpec, snap, report: watch });
    const S = (await observeWith(session, nextSpec)).hosts.get(P.spec.name) as ReachableHost;
    out.progress(`[${P.spec.name}] vacuumdb --analyze-in-stages`);
    await rebuildStatistics({ ...P, next: S }, newCaps);
  } catch (e) {
    throw new PgrepError(`${(e as Error).message}\nthe cluster is on PostgreSQL ${to} now (the inventory says so); the ${from} cluster cannot be started again once ${to} has run`, {
      exitCode: EXIT.degraded,
      hint: "fix what the message names, then run pgrep setup; pgrep status shows where each host is",
      cause: e,
    });
  }
  const reports = assessCluster(nextSpec, await observeWith(session, nextSpec));
  out.result(formatStatusTable(reports));
  out.progress(`Upgraded cluster ${spec.name} from PostgreSQL ${from} to ${to}; writes were refused for ${(((up ?? Date.now()) - down) / 1000).toFixed(1)} s (the primary's stop to its start on ${to}); no standby was copied again.`);
  if (!healthy(reports)) throw new PgrepError(`cluster ${spec.name} is not healthy after the upgrade (see above)`, { exitCode: EXIT.degraded });
  return EXIT.ok;
}
