import { ipFamily } from "../model/address.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import { RefusedError, UnreachableError } from "../errors.js";
import { connectMatches, sameLocale } from "../postgres/app-objects.js";
import { applyBlock, blockAddresses, blockMarkers, changedSettings, ensureLine, parseSettings, setSetting } from "../postgres/files.js";
import { sha256, type TlsMaterial } from "../tls/material.js";
import { renderTemplate } from "../render/index.js";
import { hopsFromPrimary, replicationCapacity, replicationConninfo, SLOT_PREFIX, slotName, synchronousStandbyNames, wantedSlots } from "../postgres/replication.js";
import { divergence } from "../cluster/positions.js";
import { autoConfSteps } from "./adopt.js";
import { planCompression } from "./compress.js";
import { loweredMinimums, primaryTurn, rollingPhases, type RestartStep } from "./rolling.js";
import { fileTarget, settingsTarget, type FileEdit, type Phase, type Plan, type Step } from "./steps.js";

export interface SetupOptions {
  /** Standbys whose data directory may be replaced even though it is not a standby of this cluster. */
  force: ReadonlySet<string>;
  /** Hosts to leave alone (a former primary waiting for rejoin). */
  skip?: ReadonlySet<string>;
  /** Standbys whose data is copied again whatever it holds now (rejoin --allow-reclone). */
  reclone?: ReadonlySet<string>;
  /** Create and check the application roles and databases (setup itself; role changes leave them alone). */
  apps?: boolean;
  /** replication.tls: the files each host should have (undefined in a dry run before the first setup). */
  tls?: TlsMaterial | undefined;
  /** When the primary needs a restart: "restart" (default, last), "switchover" (to the first streaming standby) or a standby's name. */
  restartPrimary?: string;
  /** Remove what postgresql.auto.conf sets over pgrep's settings (ALTER SYSTEM RESET): the user's consent. */
  resetAutoConf?: boolean;
}

/**
 * Standbys setup leaves as they are, with the reason: unreachable, a former primary waiting for rejoin,
 * named in `skip`, or downstream of one of those (a cascade needs its upstream). The others are planned
 * without them: nothing the survivors need depends on a host that is down.
 */
export function hostsLeftAlone(spec: ClusterSpec, snap: ClusterSnapshot, opts: Pick<SetupOptions, "skip" | "force" | "reclone">): Map<string, string> {
  const alone = new Map<string, string>();
  const P = snap.hosts.get(spec.primary.name);
  const primarySql = P?.reachable && P.sql && !P.sql.inRecovery ? P.sql : undefined;
  const byHops = [...spec.standbys].sort((a, b) => hopsFromPrimary(spec, a) - hopsFromPrimary(spec, b));
  for (const h of byHops) {
    const s = snap.hosts.get(h.name);
    if (opts.skip?.has(h.name)) alone.set(h.name, "left for later in this command");
    else if (!s?.reachable) {
      // A host that answers wrongly (a changed host key, a failed login) stops the run: it is not down.
      if (!s || !(s.error instanceof UnreachableError) || !s.error.down) throw s?.error ?? new Error(`${h.name} was not observed`);
      alone.set(h.name, `unreachable: ${s.error.message.replace(`${h.name}: `, "")}`);
    }
    else if (s.needsRejoin && !opts.force.has(h.name) && !opts.reclone?.has(h.name)) alone.set(h.name, `a former primary, waiting for: pgrep rejoin ${h.name}`);
    else if (primarySql && s.sql && !opts.force.has(h.name) && !opts.reclone?.has(h.name) && divergence(primarySql, s.sql.position))
      alone.set(h.name, `diverged: it replayed WAL past where ${spec.primary.name}'s timeline began, so it cannot follow; bring it back with: pgrep rejoin ${h.name}`);
    else if (h.upstream && alone.has(h.upstream)) alone.set(h.name, `its upstream ${h.upstream} is left as it is`);
  }
  return alone;
}

/** Pure: from the wanted cluster and what the hosts are now, the steps that make them match. */
export function planSetup(spec: ClusterSpec, snap: ClusterSnapshot, opts: SetupOptions): Plan {
  const refusals: string[] = [];
  const notes: string[] = [];
  const primaryState = snap.hosts.get(spec.primary.name);
  if (!primaryState?.reachable) throw primaryState?.error ?? new Error(`${spec.primary.name} was not observed`);
  const alone = hostsLeftAlone(spec, snap, opts);
  for (const [name, why] of alone) if (!opts.skip?.has(name)) notes.push(`${name}: left as it is: ${why}`);
  const state = (h: HostSpec) => snap.hosts.get(h.name) as ReachableHost;
  const P = primaryState;
  const hba = hbaBlock(spec, P, refusals, new Set(alone.keys()), notes);

  const primarySteps = planPrimary(spec, spec.primary, P, hba, opts, refusals, alone, notes);
  const differs: { host: string; what: string }[] = [];
  if (opts.apps) primarySteps.push(...appSteps(spec, P, refusals, notes, differs));
  const primarySysid = P.sysid !== undefined && P.pgVersion !== undefined ? P.sysid : undefined;
  const standbyLanes = spec.standbys.filter((h) => !alone.has(h.name)).map((h) => ({
    host: h.name,
    hops: hopsFromPrimary(spec, h),
    steps: planStandby(spec, h, state(h), state(spec.hosts.find((x) => x.name === h.upstream)!), primarySysid, hba, opts, refusals, alone, notes, knownAs(spec, snap, h.upstream!)),
  }));
  const rolling = rollingRestarts(spec, snap, primarySteps, standbyLanes, opts.restartPrimary ?? "restart", refusals);
  if (refusals.length) {
    throw new RefusedError(refusals.join("\n"), "nothing was changed; fix the inventory or the host, or pass --force HOST for a standby whose data may be replaced");
  }
  const phases: Phase[] = [];
  const beside = primarySteps.length ? standbyLanes.filter((l) => l.hops === 1 && l.steps.length && !needsPrimaryLane(spec, l.host, l.steps, primarySteps, P)) : [];
  if (primarySteps.length)
    phases.push({
      title: beside.length ? `primary ${spec.primary.name}, and the standbys that need nothing from it` : `primary ${spec.primary.name}`,
      lanes: [{ host: spec.primary.name, steps: primarySteps }, ...beside.map(({ host, steps }) => ({ host, steps }))],
    });
  // A cascading standby is copied from its upstream standby, so each level waits for the one before.
  const levels = [...new Set(standbyLanes.map((l) => l.hops))].sort((a, b) => a - b);
  for (const hops of levels) {
    const busy = standbyLanes.filter((l) => l.hops === hops && l.steps.length && !beside.includes(l)).map(({ host, steps }) => ({ host, steps }));
    if (busy.length) phases.push({ title: hops === 1 ? "standbys" : `cascading standbys (${hops} hops from the primary)`, lanes: busy });
  }
  phases.push(...rolling);
  return { command: "setup", cluster: spec.name, phases, notes, differs };
}

/** A host's name, its address and what the primary (and the host itself) resolved that address to. */
function knownAs(spec: ClusterSpec, snap: ClusterSnapshot, name: string): string[] {
  const h = spec.hosts.find((x) => x.name === name)!;
  const seen = [snap.hosts.get(spec.primary.name), snap.hosts.get(name)].flatMap((s) => (s?.reachable ? s.resolved[h.address] ?? [] : []));
  return [...new Set([h.name, h.address, ...seen])];
}

/**
 * Takes the restarts for changed settings out of the lanes of servers that run now and returns them as
 * phases of their own, one host at a time (see rollingPhases): the files of every host are written and
 * reloaded first. A primary that new standbys are copied from restarts in its lane, before the copies.
 */
function rollingRestarts(spec: ClusterSpec, snap: ClusterSnapshot, primarySteps: Step[], standbyLanes: { host: string; steps: Step[] }[], restartPrimary: string, refusals: string[]): Phase[] {
  const copying = standbyLanes.some((l) => l.steps.some((x) => x.kind === "clone" || (x.kind === "control" && x.action === "start")));
  const restarts = new Map<string, RestartStep>();
  const take = (host: string, steps: Step[]) => {
    const s = snap.hosts.get(host);
    const i = steps.findIndex((x) => x.kind === "restart-if-pending");
    if (i < 0 || !s?.reachable || !s.running || !s.sql) return;
    restarts.set(host, steps[i] as RestartStep);
    steps.splice(i, 1);
  };
  // Rolled to the end only while its standbys stream from it (they keep serving reads meanwhile); after
  // a promotion they do not yet, and the new primary restarts first, before they follow it.
  const P0 = snap.hosts.get(spec.primary.name);
  const served = P0?.reachable && P0.sql?.replication.some((r) => r.state === "streaming" && spec.standbys.some((x) => x.name === r.application_name && x.upstream === spec.primary.name));
  if (!copying && served) take(spec.primary.name, primarySteps);
  for (const l of standbyLanes) take(l.host, l.steps);
  if (!restarts.size) return [];
  const P = snap.hosts.get(spec.primary.name) as ReachableHost;
  const settings = primarySteps.find((x) => x.kind === "edit-file" && x.file.path === P.layout.settingsFile);
  const lowered = restarts.has(spec.primary.name) ? loweredMinimums(P, settings?.kind === "edit-file" ? applyEdit(P.files.settings, settings.edit) : P.files.settings) : [];
  const { primary, problem } = primaryTurn(spec, snap, restarts, lowered, restartPrimary);
  if (problem) refusals.push(problem);
  return rollingPhases(spec, snap, restarts, lowered, primary);
}

/**
 * Whether a standby of the primary must wait for the primary's lane. It need not when it keeps its data
 * (no copy) and the primary's lane neither (re)starts the server nor may restart it for a changed
 * setting, makes its slot or the replication role, changes TLS, or admits an address of it pg_hba.conf
 * does not admit already: then both run at once (after a promotion: the standbys follow while the new
 * primary's files are rewritten).
 */
function needsPrimaryLane(spec: ClusterSpec, host: string, steps: Step[], primarySteps: Step[], P: ReachableHost): boolean {
  // Restarts for settings usually run after every lane (rollingRestarts); one left in the primary's lane counts.
  const restarts = primarySteps.some((x) => x.kind === "restart-if-pending");
  if (steps.some((x) => x.kind === "clone") || !P.running || !P.sql || P.sql.inRecovery || (restarts && P.sql.pendingRestart.length)) return true;
  const { begin, end } = blockMarkers(spec.name);
  return primarySteps.some((x) => {
    switch (x.kind) {
      case "write-passfile":
      case "restart-if-pending": // restarts only for the settings checked below, or those pending (above)
      case "app-roles":
      case "app-databases":
        return false;
      case "control":
        return x.action !== "reload";
      case "slots":
        return x.create.includes(slotName(host));
      case "edit-file": {
        const after = applyEdit(x.file.path === P.layout.settingsFile ? P.files.settings : P.files.hba, x.edit);
        if (x.file.path === P.layout.settingsFile) return restarts && changedSettings(P.files.settings, after).some((n) => P.sql!.restartSettings.includes(n));
        if (x.file.path !== P.layout.hbaFile) return true;
        const now = blockAddresses(P.files.hba, begin, end).get(host) ?? [];
        return (blockAddresses(after, begin, end).get(host) ?? []).some((cidr) => !now.includes(cidr));
      }
      default:
        return true;
    }
  });
}

/**
 * After a reload, a restart when needed: checked on the server (which then names the settings) when a
 * setting that only changes at a restart may have changed; nothing when pgrep's settings file changes
 * none of them and nothing waits for a restart.
 */
function restartCheck(h: HostSpec, s: ReachableHost, config: Step[], why: string): Step[] {
  const settings = config.find((x) => x.kind === "edit-file" && x.file.path === s.layout.settingsFile);
  const reset = config.flatMap((x) => (x.kind === "reset-auto-conf" ? x.settings : []));
  const changed = [...(settings?.kind === "edit-file" ? changedSettings(s.files.settings, applyEdit(s.files.settings, settings.edit)) : []), ...reset];
  const restartOnly = s.sql ? changed.filter((n) => s.sql!.restartSettings.includes(n)) : changed;
  // A new include line brings the whole file in at once: only the server can tell.
  const included = config.some((x) => x.kind === "edit-file" && x.file.path === s.layout.mainConf);
  if (s.sql && !included && !restartOnly.length && !s.sql.pendingRestart.length) return [];
  return [{ kind: "restart-if-pending", host: h.name, why: s.sql && restartOnly.length ? `${restartOnly.join(", ")} only change${restartOnly.length > 1 ? "" : "s"} at a restart` : why }];
}

export { fileTarget };

function editStep(host: HostSpec, s: ReachableHost, current: string | null, path: string, mode: number, edit: FileEdit, why: string, always: boolean): Step[] {
  if (!always && current !== null && applyEdit(current, edit) === current) return [];
  return [{ kind: "edit-file", host: host.name, file: fileTarget(host, s, path, mode), edit, why }];
}

export function applyEdit(current: string | null, edit: FileEdit): string {
  switch (edit.type) {
    case "replace":
      return edit.content;
    case "block":
      return applyBlock(current ?? "", edit.block, edit.begin, edit.end);
    case "line":
      return ensureLine(current ?? "", edit.line);
    case "setting":
      return setSetting(current ?? "", edit.name, edit.value);
  }
}

function settingsContent(spec: ClusterSpec, h: HostSpec, s: ReachableHost, upstream: { host: HostSpec } | null): string {
  const standbyInSettings = upstream !== null && s.caps.standbyMechanism === "standby.signal";
  return renderTemplate("pgrep.conf", {
    cluster: spec.name,
    host: h.name,
    listenAddresses: h.pg.listenAddresses,
    port: h.pg.layout === "generic" ? h.pg.port : undefined,
    socketDir: s.layout.socketDir ?? undefined,
    walKeep: s.caps.walKeep,
    walSenders: replicationCapacity(spec).walSenders,
    replicationSlots: replicationCapacity(spec).slots,
    settings: Object.entries(h.pg.settings).map(([name, value]) => ({ name, value })),
    standbySettings: standbyInSettings,
    upstream: upstream?.host.name ?? "",
    primaryConninfo: upstream ? standbyConninfo(spec, h, s, upstream.host) : "",
    primarySlotName: upstream && spec.slots ? slotName(h.name) : undefined,
    maxSlotWalKeepSize: spec.slots && s.caps.hasMaxSlotWalKeepSize ? spec.maxSlotWalKeepSize : undefined,
    synchronousStandbyNames: synchronousStandbyNames(spec),
    passwordEncryption: spec.passwordEncryption,
    tls: spec.tls ? { cert: `${s.layout.tlsDir}/server.crt`, key: `${s.layout.tlsDir}/server.key`, ca: `${s.layout.tlsDir}/ca.crt` } : undefined,
    triggerFile: triggerFileFor(spec, s, "promote_trigger_file"),
  });
}

/** The trigger file to configure, when the inventory promotes by trigger file and this setting is the major's. */
function triggerFileFor(spec: ClusterSpec, s: ReachableHost, setting: "trigger_file" | "promote_trigger_file"): string | undefined {
  return spec.promoteMethod === "trigger_file" && s.caps.triggerFileSetting === setting ? s.layout.triggerFile : undefined;
}

export function standbyConninfo(spec: ClusterSpec, h: HostSpec, s: ReachableHost, upstream: HostSpec): string {
  return replicationConninfo(spec, s.layout, upstream, { application_name: h.name });
}

/** Config edits every host gets (settings, include line, pg_hba block). `fresh`: the files will be new or replaced. */
function configSteps(spec: ClusterSpec, h: HostSpec, s: ReachableHost, hba: FileEdit, upstream: { host: HostSpec } | null, fresh: boolean): Step[] {
  const steps: Step[] = [];
  const L = s.layout;
  const settings = settingsTarget(h, s);
  steps.push(...editStep(h, s, s.files.settings, settings.path, settings.mode, { type: "replace", content: settingsContent(spec, h, s, upstream) }, "replication settings, managed by pgrep", fresh));
  if (L.includeLine) steps.push(...editStep(h, s, s.files.mainConf, L.mainConf, 0o600, { type: "line", line: L.includeLine }, "postgresql.conf must include pgrep's settings file", fresh));
  steps.push(...editStep(h, s, s.files.hba, L.hbaFile, 0o640, hba, `let the cluster's hosts open replication connections (${spec.tls ? "TLS, " : ""}${spec.passwordEncryption === "md5" ? "md5" : "SCRAM"})${spec.apps.access.length ? ", and applications connect" : ""}`, fresh));
  return steps;
}

/** The settings pgrep's own file sets once the planned edit of it is made. */
function ownSettings(s: ReachableHost, config: Step[]): Map<string, string> {
  const edit = config.find((x) => x.kind === "edit-file" && x.file.path === s.layout.settingsFile);
  return parseSettings(edit?.kind === "edit-file" ? applyEdit(s.files.settings, edit.edit) : s.files.settings);
}

/** The host's certificate, key and the CA, when they are not the ones it should have. */
function tlsSteps(spec: ClusterSpec, h: HostSpec, s: ReachableHost, material: TlsMaterial | undefined): Step[] {
  if (!spec.tls) return [];
  const have = s.files.tls;
  const mine = material?.hosts.get(h.name);
  const current = material && mine ? have.ca === sha256(material.ca) && have.cert === sha256(mine.cert) && have.key === sha256(mine.key) : !!(have.ca && have.cert && have.key);
  if (current) return [];
  return [{ kind: "write-tls", host: h.name, dir: s.layout.tlsDir, owner: fileTarget(h, s, s.layout.tlsDir, 0o700).owner, why: "replication connections are encrypted and the upstream's certificate verified" }];
}

function passfileSteps(h: HostSpec, s: ReachableHost, why: string): Step[] {
  if (s.files.passfileCurrent) return [];
  return [{ kind: "write-passfile", host: h.name, file: fileTarget(h, s, s.layout.passfile, 0o600), why }];
}

/** Host facts that make the inventory's layout impossible to follow. */
function layoutProblems(h: HostSpec, s: ReachableHost): string[] {
  const packaged = `/var/lib/pgsql/${s.caps.major}/data`;
  if (h.pg.layout === "rhel" && s.systemd && h.pg.dataDir && h.pg.dataDir !== packaged)
    return [`${h.name}: the postgresql-${s.caps.major} service uses ${packaged}; a data_dir elsewhere needs a systemd drop-in setting PGDATA, which pgrep does not write yet`];
  return [];
}

function planPrimary(spec: ClusterSpec, h: HostSpec, P: ReachableHost, hba: FileEdit, opts: SetupOptions, refusals: string[], alone: ReadonlyMap<string, string>, notes: string[]): Step[] {
  const steps: Step[] = [];
  refusals.push(...layoutProblems(h, P));
  const exists = P.pgVersion !== undefined;
  if (!P.osUserExists) refusals.push(`${h.name}: the OS user '${h.pg.osUser}' does not exist`);
  if (!exists) {
    if (P.dataDirEntries > 0) refusals.push(`${h.name}: ${P.layout.dataDir} is not empty but holds no PostgreSQL cluster; pgrep will not write over it`);
    if (h.pg.layout === "debian" && P.files.mainConf !== null)
      refusals.push(`${h.name}: ${P.layout.mainConf} exists but its data directory ${P.layout.dataDir} does not; remove the cluster's configuration or restore its data`);
    steps.push({ kind: "create-cluster", host: h.name, why: `no cluster at ${P.layout.dataDir} yet` });
  } else {
    if (P.pgVersion !== P.caps.major) refusals.push(`${h.name}: ${P.layout.dataDir} holds a PostgreSQL ${P.pgVersion} cluster, the inventory says ${P.caps.major}`);
    if (P.running && !P.sql) refusals.push(`${h.name}: PostgreSQL is running but cannot be queried: ${P.sqlError ?? "no psql"}`);
    if (P.sql?.inRecovery || (!P.running && (P.hasStandbySignal || P.hasRecoveryConf)))
      refusals.push(`${h.name}: the inventory says primary, but this server is ${P.running ? "running as" : "configured as"} a standby (was another host promoted?)`);
    if (h.pg.layout === "debian") {
      const port = /^\s*port\s*=\s*(\d+)/m.exec(P.files.mainConf ?? "")?.[1];
      if (port && Number(port) !== h.pg.port) refusals.push(`${h.name}: the existing cluster listens on port ${port}, the inventory says ${h.pg.port}`);
    }
  }
  const tls = tlsSteps(spec, h, P, opts.tls);
  steps.push(...tls);
  const config = configSteps(spec, h, P, hba, null, !exists);
  if (exists) config.push(...autoConfSteps(h, P, { ours: ownSettings(P, config), resetAutoConf: opts.resetAutoConf }, refusals, notes).now);
  steps.push(...config);
  steps.push(...passfileSteps(h, P, "so that this host can stream from another one after a role change"));
  if (!P.running && P.portBusy) refusals.push(portTaken(h));
  if (!exists || !P.running) steps.push({ kind: "control", host: h.name, action: "start", why: "the primary must run" });
  else if (config.length || tls.length) {
    steps.push({ kind: "control", host: h.name, action: "reload", why: config.length ? "apply the new configuration" : "use the new certificate" });
    steps.push(...restartCheck(h, P, config, "some replication settings (wal_level, max_wal_senders…) only change at restart"));
  } else if (P.sql?.pendingRestart.length) {
    steps.push({ kind: "restart-if-pending", host: h.name, why: `settings waiting for a restart: ${P.sql.pendingRestart.join(", ")}` });
  }
  const role = P.sql?.role;
  if (!role || !role.canLogin || !role.replication || !role.passwordOk || !role.rewind)
    steps.push({
      kind: "ensure-role",
      host: h.name,
      why: !role ? `role ${spec.replicationUser} is missing` : `role ${spec.replicationUser} lacks LOGIN, REPLICATION, the current password or what pg_rewind needs`,
    });
  steps.push(...slotSteps(spec, h, P, "each standby's WAL is kept until it has it", alone));
  return steps;
}

/**
 * The application roles and databases the primary lacks. What exists but differs in what pgrep does not
 * change behind an owner's back (ownership, encoding, locale, superuser) is reported, not altered.
 */
function appSteps(spec: ClusterSpec, P: ReachableHost, refusals: string[], notes: string[], differs: { host: string; what: string }[]): Step[] {
  const note = (what: string) => (notes.push(what), differs.push({ host: P.name, what }));
  const { roles, databases } = spec.apps;
  if (!roles.length && !databases.length) return [];
  const seen = P.sql?.apps ?? { roles: [], databases: [] };
  const role = (n: string) => seen.roles.find((r) => r.name === n);
  const declared = new Set(roles.map((r) => r.name));
  const roleWork = roles.filter((r) => {
    const o = role(r.name);
    return !o || !o.login || o.passwordOk !== true;
  });
  for (const r of roles) if (role(r.name)?.superuser) note(`role ${r.name}: a superuser on ${P.name}; an application role should not be (ALTER ROLE ${r.name} NOSUPERUSER)`);
  const dbCreate: string[] = [];
  const dbConnect: string[] = [];
  databases.forEach((d, i) => {
    for (const n of [d.owner, ...(d.connect ?? [])])
      if (!declared.has(n) && !role(n)) refusals.push(`applications.databases[${i}] (${d.name}): role '${n}' is neither in applications.roles nor on ${P.name}`);
    const o = seen.databases.find((x) => x.name === d.name);
    if (!o) {
      dbCreate.push(d.name);
      if (d.connect) dbConnect.push(d.name);
      return;
    }
    const unlike = [
      o.owner !== d.owner ? `owner ${o.owner} (the inventory says ${d.owner}; ALTER DATABASE ${d.name} OWNER TO ${d.owner})` : "",
      o.encoding.toUpperCase() !== d.encoding ? `encoding ${o.encoding} (the inventory says ${d.encoding})` : "",
      d.locale && !(sameLocale(o.collate, d.locale) && sameLocale(o.ctype, d.locale)) ? `locale ${o.collate} (the inventory says ${d.locale})` : "",
    ].filter(Boolean);
    if (unlike.length) note(`database ${d.name}: exists on ${P.name} with ${unlike.join(", ")}; pgrep does not change it`);
    if (!connectMatches(d, o)) dbConnect.push(d.name);
  });
  const steps: Step[] = [];
  if (roleWork.length)
    steps.push({
      kind: "app-roles",
      host: P.name,
      roles: roleWork.map((r) => r.name),
      why: roleWork.map((r) => `${r.name}: ${roleDiffers(role(r.name)) ?? "its password is set (the inventory's cannot be read here to compare)"}`).join("; "),
    });
  // Drift is what is known to differ: a password that cannot be compared here is not.
  for (const r of roleWork) {
    const why = roleDiffers(role(r.name));
    if (why) differs.push({ host: P.name, what: `application role ${r.name}: ${why}` });
  }
  for (const n of dbCreate) differs.push({ host: P.name, what: `application database ${n}: missing` });
  for (const n of dbConnect.filter((x) => !dbCreate.includes(x))) differs.push({ host: P.name, what: `application database ${n}: others than the named roles may connect` });
  if (dbCreate.length || dbConnect.length)
    steps.push({
      kind: "app-databases",
      host: P.name,
      create: dbCreate,
      connect: dbConnect,
      why: [dbCreate.length ? `missing: ${dbCreate.join(", ")}` : "", dbConnect.filter((n) => !dbCreate.includes(n)).map((n) => `${n}: others than the named roles may connect`).join("; ")].filter(Boolean).join("; "),
    });
  return steps;
}

/** How an application role differs from the inventory, when that is known. */
function roleDiffers(o: { login: boolean; passwordOk: boolean | undefined } | undefined): string | undefined {
  return !o ? "missing" : !o.login ? "cannot log in" : o.passwordOk === false ? "its password is not the inventory's" : undefined;
}

/** Found before anything changes: PostgreSQL could not start on a port another program holds. */
function portTaken(h: HostSpec): string {
  return `${h.name}: port ${h.pg.port} is in use by another program, so PostgreSQL could not start there; free it or set hosts[].postgres.port`;
}

/**
 * Creates the slots the host's standbys stream through, and drops pgrep's slots nobody uses any more. A
 * standby left alone keeps the slot it has, but gets none made: a host that is gone must not pin WAL.
 */
function slotSteps(spec: ClusterSpec, h: HostSpec, s: ReachableHost, why: string, alone: ReadonlyMap<string, string>): Step[] {
  const wanted = wantedSlots(spec, h);
  // A stopped server's slots are read from disk; all of them are inactive.
  const have = s.sql ? s.sql.slots : s.slotsOnDisk.map((name) => ({ name, active: false }));
  const absent = new Set(spec.standbys.filter((x) => alone.has(x.name)).map((x) => slotName(x.name)));
  const create = wanted.filter((n) => !have.some((x) => x.name === n) && !absent.has(n));
  // Only pgrep's own, only inactive ones: a slot in use belongs to a standby that still streams.
  const drop = have.filter((x) => x.name.startsWith(SLOT_PREFIX) && !wanted.includes(x.name) && !x.active).map((x) => x.name);
  if (!create.length && !drop.length) return [];
  return [{ kind: "slots", host: h.name, create, drop, why: create.length ? why : "a slot nobody streams through keeps WAL forever" }];
}

function planStandby(
  spec: ClusterSpec,
  h: HostSpec,
  S: ReachableHost,
  U: ReachableHost,
  primarySysid: string | undefined,
  hba: FileEdit,
  opts: SetupOptions,
  refusals: string[],
  alone: ReadonlyMap<string, string>,
  notes: string[],
  /** The names and addresses the upstream goes by (a hand-made standby may name it by any). */
  upstreamKnownAs: string[],
): Step[] {
  const upstream = spec.hosts.find((x) => x.name === h.upstream)!;
  const forced = opts.force.has(h.name);
  if (!S.osUserExists) refusals.push(`${h.name}: the OS user '${h.pg.osUser}' does not exist`);
  const method = h.clone.method;
  refusals.push(...layoutProblems(h, S));
  const marker = S.caps.standbyMechanism === "standby.signal" ? S.hasStandbySignal : S.hasRecoveryConf;
  let problem: string | undefined;
  let cloneWhy: string | undefined;
  if (S.copyUnfinished && !S.running) cloneWhy = `a copy pgrep started here did not finish${method === "rsync" ? "; rsync continues it where it stopped when it is a copy of this cluster" : ""}`;
  else if (S.pgVersion === undefined) {
    if (S.dataDirEntries > 0) problem = `${S.layout.dataDir} is not empty but holds no PostgreSQL cluster`;
    else cloneWhy = "no data yet";
  } else if (S.pgVersion !== S.caps.major) problem = `${S.layout.dataDir} holds a PostgreSQL ${S.pgVersion} cluster, the inventory says ${S.caps.major}`;
  else if (primarySysid === undefined) problem = `${S.layout.dataDir} holds a cluster (system identifier ${S.sysid}) but the primary does not exist yet`;
  else if (S.sysid !== primarySysid) problem = `${S.layout.dataDir} belongs to another cluster (system identifier ${S.sysid}, the primary's is ${primarySysid})`;
  else if (S.running && S.sql && !S.sql.inRecovery) problem = "it is running as a primary (accepting writes)";
  else if (!S.running && !marker) problem = `it is stopped and not configured as a standby (no ${S.caps.standbyMechanism}); it may have been promoted`;
  if (problem) {
    if (!forced) refusals.push(`${h.name}: refusing to replace its data: ${problem}`);
    else cloneWhy = `--force: ${problem}`;
  } else if (!cloneWhy && opts.reclone?.has(h.name)) cloneWhy = "a former primary that pg_rewind could not bring back: its data is copied again (--allow-reclone)";
  const steps: Step[] = [];
  const clone = cloneWhy !== undefined;
  if (clone) refusals.push(...cloneProblems(h, S, upstream, U).map((p) => `${h.name}: ${p}`));
  if (!S.running && S.portBusy) refusals.push(portTaken(h));
  steps.push(...passfileSteps(h, S, "pg_basebackup and the standby's walreceiver read the replication password from it"));
  const tls = tlsSteps(spec, h, S, opts.tls);
  steps.push(...tls);
  const compression = planCompression(h, upstream, S.caps);
  if (clone && compression.problem) refusals.push(`${h.name}: ${compression.problem}`);
  if (clone) steps.push({ kind: "clone", host: h.name, from: upstream.name, method, compress: compression.compress, ...(compression.note ? { compressNote: compression.note } : {}), expectSysid: S.sysid, why: cloneWhy! });
  // A copy's postgresql.auto.conf is the upstream's, cleaned as it is made; one that is kept is checked.
  const config = configSteps(spec, h, S, hba, { host: upstream }, clone);
  let afterStreaming: Step[] = [];
  if (!clone && S.pgVersion !== undefined) {
    const auto = autoConfSteps(h, S, { ours: ownSettings(S, config), resetAutoConf: opts.resetAutoConf, standby: { upstream, knownAs: upstreamKnownAs, U } }, refusals, notes);
    config.push(...auto.now);
    afterStreaming = auto.afterStreaming;
  }
  steps.push(...config);
  const markerSteps = standbyMarkerSteps(spec, h, S, upstream, clone);
  steps.push(...markerSteps);
  const changed = config.length + markerSteps.length + tls.length > 0;
  if (clone || !S.running) steps.push({ kind: "control", host: h.name, action: "start", why: "the standby must run" });
  // A copy is on disk once its server has started (its first start syncs the data directory before it
  // answers): only then does the copy marker go. A server that answers with the marker still there
  // (pgrep was stopped in between) is past that too.
  if (clone || (S.copyUnfinished && S.sql))
    steps.push({ kind: "remove-file", host: h.name, path: copyMarker(S), why: "the copy is on disk: the server synced it when it started" });
  else if (changed) {
    const recoveryChanged = markerSteps.length > 0 || S.caps.primaryConninfoApply === "restart";
    steps.push(
      recoveryChanged
        ? { kind: "control", host: h.name, action: "restart", why: "standby settings on this major only change at restart" }
        : { kind: "control", host: h.name, action: "reload", why: "apply the new configuration" },
    );
    if (!recoveryChanged) steps.push(...restartCheck(h, S, config, "some settings only change at restart"));
  } else if (S.sql?.pendingRestart.length) {
    steps.push({ kind: "restart-if-pending", host: h.name, why: `settings waiting for a restart: ${S.sql.pendingRestart.join(", ")}` });
  }
  // Slots for the standbys that stream from this one (cascading), made once it runs as a standby; a former
  // primary's slots for its old standbys only hold WAL back here and go (read from disk while it is
  // stopped, dropped once it runs). A fresh copy has no slots.
  if (clone) steps.push(...slotSteps(spec, h, { ...S, sql: undefined, slotsOnDisk: [] }, "its cascading standbys' WAL is kept until they have it", alone));
  else if (!S.running || S.sql?.inRecovery) steps.push(...slotSteps(spec, h, S.running ? S : { ...S, sql: undefined }, "its cascading standbys' WAL is kept until they have it", alone));
  // A standby that runs but does not stream now (e.g. it retries after the role's password was put back)
  // is waited for too, rather than reported unhealthy while it reconnects.
  const streamsNow = !!U.sql?.replication.some((r) => r.application_name === h.name && r.state === "streaming");
  if (steps.some((x) => x.kind !== "slots") || !streamsNow) steps.push({ kind: "wait-streaming", host: h.name, upstream: upstream.name, why: steps.length ? "prove replication works before reporting success" : "it does not stream now" });
  steps.push(...afterStreaming);
  return steps;
}

/** standby.signal (12+) or recovery.conf (10/11): what makes the server start as a standby of upstream. */
function standbyMarkerSteps(spec: ClusterSpec, h: HostSpec, S: ReachableHost, upstream: HostSpec, fresh: boolean): Step[] {
  const steps: Step[] = [];
  if (S.caps.standbyMechanism === "standby.signal") {
    if (fresh || !S.hasStandbySignal)
      steps.push({ kind: "edit-file", host: h.name, file: fileTarget(h, S, `${S.layout.dataDir}/standby.signal`, 0o600), edit: { type: "replace", content: "" }, why: "start in standby mode" });
    if (S.hasRecoveryConf) steps.push({ kind: "remove-file", host: h.name, path: `${S.layout.dataDir}/recovery.conf`, why: "PostgreSQL 12+ refuses to start with a recovery.conf" });
    return steps;
  }
  const content = renderTemplate("recovery.conf", {
    cluster: spec.name,
    host: h.name,
    upstream: upstream.name,
    primaryConninfo: standbyConninfo(spec, h, S, upstream),
    primarySlotName: spec.slots ? slotName(h.name) : undefined,
    triggerFile: triggerFileFor(spec, S, "trigger_file"),
  });
  return editStep(h, S, S.files.recoveryConf, `${S.layout.dataDir}/recovery.conf`, 0o600, { type: "replace", content }, "standby mode and where to stream from", fresh);
}

/**
 * Files that make a stopped host a standby of its inventory upstream, written whatever they hold now: used
 * on a former primary so that it can never start as a second primary.
 */
export function planMarkStandby(spec: ClusterSpec, snap: ClusterSnapshot, name: string, opts: { rejoin: boolean } = { rejoin: false }): Step[] {
  const h = spec.hosts.find((x) => x.name === name)!;
  const S = snap.hosts.get(name) as ReachableHost;
  const upstream = spec.hosts.find((x) => x.name === h.upstream)!;
  const refusals: string[] = [];
  const hba = hbaBlock(spec, snap.hosts.get(spec.primary.name) as ReachableHost, refusals);
  // A former primary that may hold WAL the new one never had: setup leaves it alone until `pgrep rejoin`.
  const rejoin: Step[] = opts.rejoin
    ? [{ kind: "edit-file", host: name, file: fileTarget(h, S, rejoinMarker(S), 0o644), edit: { type: "replace", content: `a former primary of cluster ${spec.name}; ${spec.primary.name} was promoted. Bring it back with: pgrep rejoin ${name}\n` }, why: "it may hold writes the new primary never had: only pgrep rejoin (pg_rewind) brings it back" }]
    : [];
  return [...rejoin, ...standbyMarkerSteps(spec, h, S, upstream, true), ...configSteps(spec, h, S, hba, { host: upstream }, true)];
}

/** Beside the data directory while a copy pgrep made is not known to be on disk (until its server started). */
export function copyMarker(s: ReachableHost): string {
  return `${s.layout.dataDir}.pgrep-copy`;
}

/** Beside the data directory, like the copy marker: a former primary waiting for `pgrep rejoin`. */
export function rejoinMarker(s: ReachableHost): string {
  return `${s.layout.dataDir}.pgrep-rejoin`;
}

/** What would make a clone fail, found before anything is stopped or emptied. */
function cloneProblems(h: HostSpec, S: ReachableHost, upstream: HostSpec, U: ReachableHost): string[] {
  const major = S.caps.major;
  if (h.clone.method === "basebackup") {
    if (!S.pgBasebackup || S.pgBasebackupMajor !== major)
      return [
        `no pg_basebackup of PostgreSQL ${major} on this host${S.pgBasebackup ? ` (${S.pgBasebackup} is ${S.pgBasebackupMajor})` : ""}; install the PostgreSQL ${major} client, or use clone: { method: rsync }`,
      ];
    return [];
  }
  const problems: string[] = [];
  if (!S.hasRsync) problems.push("rsync is not installed here (clone method rsync)");
  if (!U.hasRsync) problems.push(`rsync is not installed on ${upstream.name} (clone method rsync)`);
  if ((h.connection.kind === "local") !== (upstream.connection.kind === "local"))
    problems.push(`clone method rsync needs both hosts local or both over SSH (${upstream.name} is not)`);
  return problems;
}

/**
 * pg_hba lines for every host's address, as the primary resolves it. A host that is down is not looked up
 * (its name may have gone with it, and a resolver can take many seconds to say so): it keeps the addresses
 * the primary's block already admits for it, or is left out, and named either way.
 */
function hbaBlock(spec: ClusterSpec, P: ReachableHost, refusals: string[], down: ReadonlySet<string> = new Set(), notes: string[] = []): FileEdit {
  const byCidr = new Map<string, string[]>();
  const { begin, end } = blockMarkers(spec.name);
  const known = blockAddresses(P.files.hba, begin, end);
  for (const h of spec.hosts) {
    let cidrs = (ipFamily(h.address) ? [h.address] : (P.resolved[h.address] ?? [])).map((ip) => `${ip}/${ipFamily(ip) === 6 ? 128 : 32}`);
    if (!cidrs.length && down.has(h.name)) {
      cidrs = known.get(h.name) ?? [];
      notes.push(
        cidrs.length
          ? `${h.name}: pg_hba.conf keeps its last known address ${cidrs.join(", ")} (its name is not looked up while it is down)`
          : `${h.name}: not in pg_hba.conf for now: no address is known for '${h.address}' while it is down`,
      );
    } else if (!cidrs.length) refusals.push(`${h.name}: the primary cannot resolve its address '${h.address}'`);
    for (const cidr of cidrs) byCidr.set(cidr, [...(byCidr.get(cidr) ?? []), h.name]);
  }
  const entries = [...byCidr].map(([cidr, names]) => ({ cidr, names: names.join(", ") }));
  const type = spec.tls ? "hostssl" : "host   ";
  const access = spec.apps.access.map((r) => {
    const option = r.clientCert ? P.caps.clientCertOption[r.clientCert] : "";
    if (option === null) refusals.push(`${r.origin}: PostgreSQL ${P.caps.major} cannot ask for client_cert: verify-full (12+); use verify-ca`);
    return { ...r, options: option ?? "" };
  });
  return { type: "block", begin, end, block: renderTemplate("pg_hba.block", { begin, end, user: spec.replicationUser, entries, type, method: spec.passwordEncryption, access }) };
}

