import { ipFamily } from "../model/address.js";
import { InputError, lastLines, PgrepError } from "../errors.js";
import { mergePgpass, type PgpassEntry } from "../postgres/files.js";
import { draftLayout, resolveLayout } from "../postgres/layout.js";
import { queryJson, sqlLiteral } from "../postgres/sql.js";
import { storedPasswordMatches, type PasswordEncryption } from "../postgres/scram.js";
import { capabilities, isSupportedMajor, REWIND_FUNCTIONS, type Capabilities } from "../postgres/versions.js";
import type { Transport } from "../transport/types.js";
import type { Connections } from "./connections.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import { parseKv, PROBE_SCRIPT, RESOLVE_SCRIPT } from "./probe.sh.js";
import type { ClusterSnapshot, HostState, PositionRead, ReachableHost, SqlState } from "./state.js";
import { appObjectsExpression, parseAppObjects } from "../postgres/app-objects.js";
import { HISTORY_SQL, parseHistory, positionFieldsSql, positionFrom, positionRead, positionSql, type RawPosition } from "./positions.js";

/** The .pgpass entries every host gets: one per cluster host, so any host can become the upstream. */
export function pgpassEntries(spec: ClusterSpec, password: string): PgpassEntry[] {
  const seen = new Set<string>();
  return spec.hosts
    .map((h) => ({ host: h.address, port: h.pg.port, user: spec.replicationUser, password }))
    .filter((e) => !seen.has(`${e.host}:${e.port}`) && !!seen.add(`${e.host}:${e.port}`));
}

/** Reads every host (read-only), in parallel; when the major is detected, the primary's decides it first. */
/** `resolveOn`: standbys that resolve the hosts' names too, as the primary does (the target of a promotion). */
export async function observeCluster(spec: ClusterSpec, conns: Connections, password: string | undefined, appPasswords?: ReadonlyMap<string, string>, resolveOn: readonly string[] = []): Promise<ClusterSnapshot> {
  const hosts = new Map<string, HostState>();
  const dialled = unreachableHosts(spec, conns); // every connection starts now
  const resolvers = spec.standbys.filter((h) => resolveOn.includes(h.name));
  const others = spec.standbys.filter((h) => !resolveOn.includes(h.name));
  // With the major in the inventory every host is read at once; otherwise the primary decides it first.
  const known = spec.primary.pg.major;
  const early = known === undefined ? [] : others.map((h) => observeHost(spec, h, conns, password, known));
  // The primary resolves the others' names for pg_hba, but not those of hosts that are down: a name that
  // went with its host (a deleted VM) can take the resolver many seconds to give up on.
  const down = await dialled;
  const resolving = resolvers.map((h) => observeHost(spec, h, conns, password, known, down, undefined, true));
  const primaryState = await observeHost(spec, spec.primary, conns, password, known, down, appPasswords, true);
  hosts.set(spec.primary.name, primaryState);
  const major = known ?? (primaryState.reachable ? primaryState.caps.major : undefined);
  const rest = known === undefined ? await Promise.all(others.map((h) => observeHost(spec, h, conns, password, major))) : await Promise.all(early);
  rest.forEach((s) => hosts.set(s.name, s));
  (await Promise.all(resolving)).forEach((s) => hosts.set(s.name, s));
  if (major === undefined) {
    throw primaryState.reachable ? new InputError("cannot tell the PostgreSQL major") : primaryState.error;
  }
  return { major, hosts };
}

/** Dials every host (once per run) and names those whose connection failed. */
async function unreachableHosts(spec: ClusterSpec, conns: Connections): Promise<Set<string>> {
  const failed = await Promise.all(spec.hosts.map((h) => conns.get(h).then(() => undefined, () => h.name)));
  return new Set(failed.filter((n): n is string => n !== undefined));
}

/** The hosts a command needs before it acts, read; the others read when the command asks. */
export interface StagedSnapshot {
  /** The primary and the named hosts only; the others are not in it. */
  first: ClusterSnapshot;
  /** The positions of the other hosts, read lightly beside the first ones (a promotion compares them). */
  positions: PositionRead[];
  /** Every host: the first ones as read above, the others read at the first call (once). */
  all(): Promise<ClusterSnapshot>;
}

/**
 * Reads the primary and `first` alone; every other host only when asked, once the command has done what
 * could not wait: with every probe at once, a small machine was slower at each of them, the one a
 * promotion waits for included. The names `resolveOn` hosts look up (for the pg_hba.conf they will write
 * as the primary) are looked up then too, not in the first read. With the major not in the inventory
 * every host is read first (the primary decides it).
 */
export async function observeStaged(spec: ClusterSpec, conns: Connections, password: string | undefined, resolveOn: readonly string[], first: readonly string[]): Promise<StagedSnapshot> {
  const known = spec.primary.pg.major;
  if (known === undefined) {
    const whole = await observeCluster(spec, conns, password, undefined, resolveOn);
    return { first: whole, positions: [...whole.hosts.values()].filter((x) => !first.includes(x.name) && x.name !== spec.primary.name).map(positionRead), all: () => Promise.resolve(whole) };
  }
  const read = (h: HostSpec) => observeHost(spec, h, conns, password, known);
  const isFirst = (h: HostSpec) => h === spec.primary || first.includes(h.name);
  // Every host is dialled now; nothing in the first read resolves names, so it need not wait for the
  // other hosts' dials. The command does, before it plans: which of them answer decides slots.
  const dialled = unreachableHosts(spec, conns);
  const [firstStates, positions] = await Promise.all([Promise.all(spec.hosts.filter(isFirst).map(read)), observePositions(spec.hosts.filter((h) => !isFirst(h)), conns, known)]);
  await dialled;
  let all: Promise<ClusterSnapshot> | undefined;
  const readAll = () =>
    (all ??= (async () => {
      const down = await dialled;
      const names = spec.hosts.filter((h) => !ipFamily(h.address) && !down.has(h.name)).map((h) => h.address);
      const [rest, lookedUp] = await Promise.all([
        Promise.all(spec.hosts.filter((h) => !isFirst(h)).map(read)),
        Promise.all(firstStates.map(async (x) => (x.reachable && resolveOn.includes(x.name) && names.length ? { ...x, resolved: await resolveNames(x.transport, x.layout.admin, names) } : x))),
      ]);
      const byName = new Map([...lookedUp, ...rest].map((x) => [x.name, x]));
      return { major: known, hosts: new Map(spec.hosts.map((h) => [h.name, byName.get(h.name)!])) };
    })());
  return { first: { major: known, hosts: new Map(firstStates.map((x) => [x.name, x])) }, positions, all: readAll };
}

/**
 * A light read of standbys' positions (what a promotion compares its target with), in one round trip
 * each: the probe without files or name look-ups, and one small query.
 */
export async function observePositions(hosts: readonly HostSpec[], conns: Connections, major: number): Promise<PositionRead[]> {
  const sql = positionSql(capabilities(major));
  return Promise.all(
    hosts.map(async (host): Promise<PositionRead> => {
      let t: Transport;
      try {
        t = await conns.get(host);
      } catch (e) {
        return { name: host.name, position: undefined, why: `unreachable: ${(e as Error).message.replace(`${host.name}: `, "")}` };
      }
      const draft = draftLayout(host, t.loginUser);
      const args = [host.pg.osUser, host.pg.binDir ?? "", String(major), draft.dataDir, `sql:${draft.admin === host.pg.osUser ? "direct" : "runuser"}`];
      const r = await t.run(["sh", "-c", PROBE_SCRIPT, "sh", ...args], { user: draft.admin, what: "reading its WAL position", stdin: sql, allowFailure: true });
      const kv = parseKv(r.stdout);
      const at = kv.get("read_at") ? { readAt: kv.get("read_at")! } : {};
      if (r.exitCode !== 0) return { name: host.name, position: undefined, why: `reading its position failed: ${lastLines(r.stderr, 1)}`, ...at };
      if (kv.get("running") !== "1") return { name: host.name, position: undefined, why: "PostgreSQL is not running", ...at };
      const answer = kv.has("sql_json") ? parseJson(kv.get("sql_json")!) : undefined;
      if (!answer) return { name: host.name, position: undefined, why: `cannot query: ${kv.has("sql_error") ? lastLines(Buffer.from(kv.get("sql_error")!, "base64").toString("utf8"), 1) : "no psql"}`, ...at };
      return { name: host.name, position: positionFrom(host.name, answer as unknown as RawPosition), needsRejoin: kv.has("needs_rejoin"), ...at };
    }),
  );
}

/** The addresses each name resolves to on that host, sorted, as a probe's resolve items give them. */
async function resolveNames(t: Transport, user: string, names: readonly string[]): Promise<Record<string, string[]>> {
  const r = await t.run(["sh", "-c", RESOLVE_SCRIPT, "sh", ...names], { user, what: "looking up the hosts' names" });
  return resolvedFrom(parseKv(r.stdout));
}

function resolvedFrom(kv: Map<string, string>): Record<string, string[]> {
  return Object.fromEntries([...kv].filter(([k]) => k.startsWith("resolve_")).map(([k, v]) => [k.slice(8), [...new Set(v.split(" ").filter(Boolean))].sort()]));
}

async function observeHost(
  spec: ClusterSpec,
  host: HostSpec,
  conns: Connections,
  password: string | undefined,
  major: number | undefined,
  down: ReadonlySet<string> = new Set(),
  appPasswords?: ReadonlyMap<string, string>,
  resolves = false,
): Promise<HostState> {
  let t: Transport;
  try {
    t = await conns.get(host);
  } catch (e) {
    return { name: host.name, reachable: false, error: e as Error };
  }
  // Paths do not depend on the bin dir, and "~/" is resolved by the probe to the OS user's home.
  const draft = draftLayout(host, t.loginUser);
  const args = [
    host.pg.osUser,
    host.pg.binDir ?? "",
    major === undefined ? "" : String(major),
    draft.dataDir,
    `file:settings=${draft.settingsFile}`,
    `file:hba=${draft.hbaFile}`,
    `file:mainConf=${draft.mainConf}`,
    `file:passfile=${draft.passfile}`,
    `file:recoveryConf=${draft.dataDir}/recovery.conf`,
    `file:autoConf=${draft.dataDir}/postgresql.auto.conf`,
    `port:${host.pg.port}`,
    ...(["ca.crt", "server.crt", "server.key"] as const).map((f, i) => `sha:${["tlsCa", "tlsCert", "tlsKey"][i]}=${draft.tlsDir}/${f}`),
  ];
  if (resolves) for (const h of spec.hosts) if (!ipFamily(h.address) && !down.has(h.name)) args.push(`resolve:${h.address}`);
  // Application roles and databases are read on the primary, and only by setup (which makes them).
  const apps = host === spec.primary && appPasswords && (spec.apps.roles.length || spec.apps.databases.length) ? { expression: appObjectsExpression(spec.apps), passwords: appPasswords } : undefined;
  // With the major known, the server's state is read in the same round trip: the probe runs the query
  // (as the PostgreSQL OS user) when the server runs.
  const sql = major !== undefined && isSupportedMajor(major) ? serverStateSql(capabilities(major), spec.replicationUser, apps?.expression) : undefined;
  if (sql !== undefined) args.push(`sql:${draft.admin === host.pg.osUser ? "direct" : "runuser"}`);
  const r = await t.run(["sh", "-c", PROBE_SCRIPT, "sh", ...args], { user: draft.admin, what: "probing the host", ...(sql !== undefined ? { stdin: sql } : {}) });
  const kv = parseKv(r.stdout);
  const file = (k: string) => (kv.has(`file_${k}`) ? Buffer.from(kv.get(`file_${k}`)!, "base64").toString("utf8") : null);
  for (const k of ["settings", "hba", "mainConf", "recoveryConf", "autoConf"])
    if (kv.has(`unreadable_${k}`)) throw new PgrepError(`${host.name}: cannot read ${kv.get(`path_${k}`)} as ${draft.admin}`);

  const binVersion = kv.get("bin_version");
  const pgVersion = kv.has("pg_version") ? Number(kv.get("pg_version")) : undefined;
  const hostMajor = major ?? pgVersion ?? (binVersion ? Number(binVersion.split(".")[0]) : undefined);
  if (hostMajor === undefined || !isSupportedMajor(hostMajor)) {
    const error = new InputError(
      `${host.name}: no PostgreSQL server binaries found${major ? ` for major ${major}` : ""}`,
      major ? `install postgresql-${major} on ${host.name}, or set postgres.bin_dir` : "install PostgreSQL, or set postgres.bin_dir and postgres.major",
    );
    return { name: host.name, reachable: false, error };
  }
  const home = kv.get("home") ?? "";
  const layout = resolveLayout(host, { loginUser: t.loginUser, binDir: kv.get("bin_dir") ?? "", major: hostMajor, home, systemd: kv.get("systemd") === "1" });
  const passfileText = file("passfile");
  const state: ReachableHost = {
    name: host.name,
    reachable: true,
    ...(kv.get("read_at") ? { readAt: kv.get("read_at")! } : {}),
    transport: t,
    layout,
    caps: capabilities(hostMajor),
    osUserExists: kv.get("os_user_exists") === "1",
    binVersion,
    psql: kv.get("psql") || undefined,
    pgBasebackup: kv.get("pg_basebackup") || undefined,
    pgBasebackupMajor: kv.get("pg_basebackup_version") ? Number(kv.get("pg_basebackup_version")) : undefined,
    hasRsync: kv.get("rsync") === "1",
    hasPgRewind: kv.get("pg_rewind") === "1",
    systemd: kv.get("systemd") === "1",
    dataDirExists: kv.get("data_dir_exists") === "1",
    dataDirEntries: Number(kv.get("data_dir_entries") ?? 0),
    pgVersion,
    sysid: kv.get("sysid") || undefined,
    running: kv.get("running") === "1",
    startedAt: kv.get("started_at"),
    hasStandbySignal: kv.has("has_standby.signal"),
    hasRecoveryConf: kv.has("has_recovery.conf"),
    copyUnfinished: kv.has("copy_unfinished"),
    needsRejoin: kv.has("needs_rejoin"),
    slotsOnDisk: (kv.get("slots_on_disk") ?? "").split(" ").filter(Boolean),
    portBusy: kv.has("port_busy"),
    files: {
      settings: file("settings"),
      hba: file("hba"),
      mainConf: file("mainConf"),
      recoveryConf: file("recoveryConf"),
      autoConf: file("autoConf"),
      passfileCurrent: password !== undefined && passfileText !== null && mergePgpass(passfileText, pgpassEntries(spec, password)) === passfileText,
      tls: { ca: kv.get("sha_tlsCa") ?? null, cert: kv.get("sha_tlsCert") ?? null, key: kv.get("sha_tlsKey") ?? null },
    },
    resolved: resolvedFrom(kv),
    sql: undefined,
    sqlError: undefined,
  };
  const answer = kv.has("sql_json") ? parseJson(kv.get("sql_json")!) : undefined;
  if (answer) {
    state.sql = parseServerState(host.name, answer, spec.replicationUser, password, spec.passwordEncryption, apps?.passwords);
  } else if (kv.has("sql_error")) {
    state.sqlError = `${host.name}: reading server state failed: ${lastLines(Buffer.from(kv.get("sql_error")!, "base64").toString("utf8"), 2)}`;
  } else if (state.running && state.psql) {
    try {
      state.sql = await observeSql(state, host, spec.replicationUser, password, spec.passwordEncryption, apps);
    } catch (e) {
      state.sqlError = (e as Error).message;
    }
  }
  return state;
}

export async function observeSql(
  s: ReachableHost,
  host: HostSpec,
  replUser: string,
  password: string | undefined,
  encryption: PasswordEncryption = "scram-sha-256",
  apps?: { expression: string; passwords: ReadonlyMap<string, string> },
): Promise<SqlState> {
  const raw = await queryJson<Record<string, unknown>>(
    { t: s.transport, dataDir: s.layout.dataDir, psql: s.psql!, osUser: host.pg.osUser },
    serverStateSql(s.caps, replUser, apps?.expression),
    "reading server state",
  );
  return parseServerState(host.name, raw, replUser, password, encryption, apps?.passwords);
}

/** The probe's JSON answer, or undefined when something else came with it (then psql is asked again). */
function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === "object" ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** One query for all observe needs of a running server, as one JSON object. */
function serverStateSql(caps: Capabilities, replUser: string, appsExpression: string | undefined): string {
  const recv = caps.receiverFlushColumn;
  return `WITH pos AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)
SELECT json_build_object(
  'version_num', current_setting('server_version_num')::int,
  'sysid', (SELECT system_identifier::text FROM pg_control_system()),
  'lsn', (SELECT lsn::text FROM pos),
  ${positionFieldsSql(caps)},
  'history', ${HISTORY_SQL},
  'replay_gap', CASE WHEN pg_is_in_recovery() THEN greatest(0, pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())) END,
  'replay_lag_s', CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END,
  'started_at', pg_postmaster_start_time()::text,
  'pending_restart', (SELECT coalesce(json_agg(name), '[]') FROM pg_settings WHERE pending_restart),
  'restart_settings', (SELECT coalesce(json_agg(name), '[]') FROM pg_settings WHERE context = 'postmaster'),
  'standby_minimums', (SELECT coalesce(json_object_agg(s.name, json_build_object('now', s.setting, 'boot', s.boot_val,
      'others', (SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name AND f.error IS NULL AND f.sourcefile NOT LIKE '%/pgrep.conf' AND f.sourcefile NOT LIKE '%/postgresql.auto.conf' ORDER BY f.seqno DESC LIMIT 1),
      'auto', (SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name AND f.error IS NULL AND f.sourcefile LIKE '%/postgresql.auto.conf' ORDER BY f.seqno DESC LIMIT 1))), '{}')
    FROM pg_settings s WHERE s.name IN (${caps.standbyMinimums.map(sqlLiteral).join(", ")})),
  'replication', (SELECT coalesce(json_agg(json_build_object(
      'application_name', application_name, 'client_addr', client_addr::text, 'state', state, 'sync_state', sync_state,
      'sent_lsn', sent_lsn::text, 'replay_lsn', replay_lsn::text,
      'lag_bytes', pg_wal_lsn_diff((SELECT lsn FROM pos), replay_lsn), 'replay_lag_s', extract(epoch FROM replay_lag))), '[]')
    FROM pg_stat_replication),
  'slots', (SELECT coalesce(json_agg(json_build_object('name', slot_name, 'active', active,
      'retained_bytes', pg_wal_lsn_diff((SELECT lsn FROM pos), restart_lsn), 'wal_status', to_jsonb(s)->>'wal_status')), '[]')
    FROM pg_replication_slots s WHERE slot_type = 'physical'),
  'receiver', (SELECT json_build_object('status', status, 'conninfo', conninfo, 'flushed', ${recv}::text) FROM pg_stat_wal_receiver),
  'role', (SELECT json_build_object('can_login', rolcanlogin, 'replication', rolreplication, 'verifier', rolpassword,
      'rewind', ${caps.rewindWithoutSuperuser ? REWIND_FUNCTIONS.map((f) => `has_function_privilege(rolname, ${sqlLiteral(f)}, 'EXECUTE')`).join(" AND ") : "true"})
    FROM pg_authid WHERE rolname = ${sqlLiteral(replUser)})${appsExpression === undefined ? "" : `,
  'apps', ${appsExpression}`}
)`;
}

function parseServerState(name: string, raw: Record<string, unknown>, replUser: string, password: string | undefined, encryption: PasswordEncryption, appPasswords: ReadonlyMap<string, string> | undefined): SqlState {
  const role = raw.role as { can_login: boolean; replication: boolean; verifier: string | null; rewind: boolean } | null;
  return {
    inRecovery: raw.in_recovery as boolean,
    versionNum: raw.version_num as number,
    sysid: raw.sysid as string,
    timeline: raw.timeline as number,
    position: positionFrom(name, raw as unknown as RawPosition),
    history: parseHistory(raw.history as string | null),
    lsn: raw.lsn as string | null,
    receiveLsn: raw.receive_lsn as string | null,
    replayGapBytes: raw.replay_gap === null || raw.replay_gap === undefined ? null : Number(raw.replay_gap),
    replayLagSeconds: raw.replay_lag_s as number | null,
    startedAt: raw.started_at as string,
    pendingRestart: raw.pending_restart as string[],
    restartSettings: raw.restart_settings as string[],
    standbyMinimums: (raw.standby_minimums ?? {}) as SqlState["standbyMinimums"],
    replication: raw.replication as SqlState["replication"],
    receiver: raw.receiver as SqlState["receiver"],
    slots: raw.slots as SqlState["slots"],
    // The verifier is compared here and dropped: snapshots hold no secrets.
    apps: appPasswords ? parseAppObjects(raw.apps, appPasswords) : undefined,
    role: role && { canLogin: role.can_login, replication: role.replication, rewind: role.rewind, passwordOk: !!password && storedPasswordMatches(encryption, role.verifier, password, replUser) },
  };
}

