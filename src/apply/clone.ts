import { ipFamily } from "../model/address.js";
import { onInterrupt } from "../cleanup.js";
import type { HostSpec } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { CommandError, PgrepError, RefusedError } from "../errors.js";
import { endWalsendersSql, replicationConninfo, slotName } from "../postgres/replication.js";
import { formatBytes, Meter, parseBasebackup, parseRsync, withoutProgressLines } from "../progress.js";
import { BackupSession } from "../postgres/backup.js";
import { runSql } from "../postgres/sql.js";
import { recordCreated } from "../state-store.js";
import { writeFileAtomic } from "../transport/files.js";
import { hostPattern } from "../transport/known-hosts.js";
import { hostOf, sqlTarget, type ExecContext } from "./context.js";
import { control, dropCopiedConninfo, emptyDataDir, prepareDataDir, readSysid } from "./host-ops.js";
import type { Step } from "../plan/steps.js";
import { copyMarker } from "../plan/setup.js";
import { chooseCompression, type CompressChoice } from "./link.js";

type CloneStep = Extract<Step, { kind: "clone" }>;

/** Makes the standby's data directory a copy of its upstream's. Never touches the upstream's data. */
export async function clone(ctx: ExecContext, step: CloneStep, h: HostSpec, s: ReachableHost): Promise<string> {
  const { spec: uh, state: us } = hostOf(ctx, step.from);
  const L = s.layout;
  const [primarySysid = "", dataBytes = "0"] = (await runSql(sqlTarget(uh, us), "SELECT system_identifier, (SELECT sum(pg_database_size(oid)) FROM pg_database) FROM pg_control_system()")).trim().split("|");
  // The link is measured (clone.compress: auto) while the data directory is made ready.
  const choosing = compressionFor(ctx, step, h, s, uh, Number(dataBytes));
  choosing.catch(() => {}); // awaited before the copy
  let createdNow = false;
  let config: Promise<void> | undefined;
  let forgetConfig = () => {};
  if (h.pg.layout === "debian" && s.files.mainConf === null) {
    // Debian keeps the configuration in /etc and a clone brings only the data directory, so the cluster's
    // configuration is made by pg_createcluster, whose initdb runs beside the copy instead of before it.
    config = debianConfigBeside(ctx, h, s);
    config.catch(() => {}); // awaited below, after the copy
    // Interrupted, the configuration still points at the data directory: nothing may start the side
    // cluster as a primary (Debian starts every cluster at boot).
    forgetConfig = onInterrupt(() => config!.then(() => pointConfigAtDataDir(s)));
    createdNow = true;
    await prepareDataDir(s, h);
  } else if (h.pg.layout === "debian" && s.files.mainConf?.includes(`data_directory = '${L.dataDir}${SIDE}'`)) {
    // A copy cut short before its configuration was pointed at the data directory (pgrep was killed).
    await pointConfigAtDataDir(s);
  } else if (h.pg.layout !== "debian") await prepareDataDir(s, h);
  let now = await readSysid(s);
  if (now.running) {
    await control(h, s, "stop");
    now = await readSysid(s);
  }
  // Checked again right before anything is removed: the host may have changed since it was observed.
  if (now.running) throw new RefusedError(`${h.name}: PostgreSQL is still running in ${L.dataDir}; not replacing its data`);
  if (!createdNow && now.sysid !== step.expectSysid && now.sysid !== primarySysid)
    throw new RefusedError(`${h.name}: ${L.dataDir} changed since it was checked (system identifier ${now.sysid ?? "none"}); not replacing it`, "run setup again");

  // A marker beside the data directory while the copy runs: if pgrep loses the host mid-copy (SSH cut),
  // the next setup knows the half-made copy is its own and copies again (rsync: continues it) instead of
  // refusing it.
  const marker = copyMarker(s);
  let compression: CompressChoice = { algo: undefined, said: "" };
  let moved: RsyncMoved | undefined;
  // An rsync copy cut short (pgrep killed, a connection lost) is continued where it stopped when its marker
  // says it was a copy of this same cluster: rsync then sends only what the copy lacks or what differs.
  const resume = step.method === "rsync" && s.copyUnfinished && (await readMarker(s, marker)) === primarySysid;
  if (resume) ctx.report.info(`[${h.name}] continuing the copy of ${step.from} left unfinished here: rsync sends only what it lacks or what changed since`);
  await writeFileAtomic(s.transport, marker, `${primarySysid}\n`, { mode: 0o600, asUser: L.admin });
  try {
    compression = await choosing;
    if (step.method === "basebackup") await viaBasebackup(ctx, h, s, uh, us, compression.algo);
    else moved = await viaRsync(ctx, h, s, uh, us, now.sysid === primarySysid || resume, compression.algo);
  } catch (e) {
    // A pg_basebackup copy is cleaned away, and its marker with it; a half-made rsync copy keeps its marker,
    // which tells the next setup to continue it.
    await s.transport.run(["sh", "-c", '[ -n "$(ls -A "$1")" ] || rm -f -- "$2"', "sh", L.dataDir, marker], { user: L.admin, allowFailure: true }).catch(() => {});
    throw e;
  } finally {
    // On every path the configuration ends up pointing at the real data directory (copied or empty).
    if (config) await config.then(() => pointConfigAtDataDir(s));
    forgetConfig();
  }
  // A fresh copy is no former primary waiting for rejoin. The copy marker stays until the server has
  // started: neither copy method syncs its files to disk, the server's first start does (below).
  await s.transport.run(["rm", "-f", "--", `${L.dataDir}.pgrep-rejoin`], { user: L.admin });

  if (!createdNow) await recordCreated(ctx.spec.stateDir, { host: h.name, kind: "data_dir", path: L.dataDir });
  if (s.caps.standbyMechanism === "standby.signal") await dropCopiedConninfo(h, s);
  const how = [compression.algo ? compression.said.replace(/:.*/, "") : "", resume && moved ? `continued: ${formatBytes(moved.received)} received for ${formatBytes(moved.total)} of files` : ""].filter(Boolean);
  return `cloned ${step.from} into ${L.dataDir} with ${step.method}${how.map((x) => `, ${x}`).join("")} (system identifier ${primarySysid})`;
}

async function readMarker(s: ReachableHost, marker: string): Promise<string> {
  const r = await s.transport.run(["cat", "--", marker], { user: s.layout.admin, allowFailure: true });
  return r.exitCode === 0 ? r.stdout.trim() : "";
}

async function compressionFor(ctx: ExecContext, step: CloneStep, h: HostSpec, s: ReachableHost, uh: HostSpec, dataBytes: number): Promise<CompressChoice> {
  if (step.compress === "none") return { algo: undefined, said: step.compressNote ?? "uncompressed" };
  if (step.compress !== "auto") return { algo: step.compress, said: `compressed with ${step.compress}: clone.compress` };
  const choice = await chooseCompression(ctx, h, s, uh, dataBytes);
  ctx.report.info(`[${h.name}] ${choice.said}`);
  return choice;
}

const SIDE = ".pgrep-init";

async function debianConfigBeside(ctx: ExecContext, h: HostSpec, s: ReachableHost): Promise<void> {
  const side = `${s.layout.dataDir}${SIDE}`;
  await s.transport.run(["rm", "-rf", "--", side], { user: s.layout.admin });
  const own = s.layout.createCluster.argv.filter((a, i, all) => a !== "--datadir" && all[i - 1] !== "--datadir");
  // The copy replaces this initdb's data, so its own options ("--" and after) do not matter here, and what
  // it writes is thrown away: it is not synced to disk (--no-sync), where it would compete with the copy.
  const argv = [...own.slice(0, own.includes("--") ? own.indexOf("--") : own.length), "--datadir", side, "--", "--no-sync"];
  await s.transport.run(argv, { user: s.layout.createCluster.user, what: "creating the cluster's configuration" });
  await recordCreated(ctx.spec.stateDir, { host: h.name, kind: "data_dir", path: s.layout.dataDir, debianCluster: `${s.caps.major}/${h.pg.clusterName}` });
}

async function pointConfigAtDataDir(s: ReachableHost): Promise<void> {
  const side = `${s.layout.dataDir}${SIDE}`;
  await s.transport.run(
    ["sh", "-c", 'set -e; sed -i "s|^data_directory = \x27$2\x27|data_directory = \x27$3\x27|" "$1"; grep -q "^data_directory = \x27$3\x27" "$1"; rm -rf -- "$2"', "sh", s.layout.mainConf, side, s.layout.dataDir],
    { user: s.layout.admin, what: "pointing the configuration at the data directory" },
  );
}

/**
 * The standby's slot can still be held by a walsender of an earlier copy or connection of this host that
 * went silently (a network cut: its upstream notices only at wal_sender_timeout). Nothing legitimate
 * streams through it now — this host's data is about to be replaced — so that walsender is ended, and
 * the slot awaited, before the copy asks for it.
 */
async function freeOwnSlot(ctx: ExecContext, h: HostSpec, uh: HostSpec, us: ReachableHost): Promise<void> {
  const [ended, left] = (await runSql(sqlTarget(uh, us), endWalsendersSql(h.name, 0, 10), "freeing the standby's slot")).trim().split("\n");
  if (ended !== "0") ctx.report.info(`[${h.name}] ended a connection on ${uh.name} that still held its slot ${slotName(h.name)} (left by an earlier copy or connection that went silently)`);
  if (left !== "0") throw new PgrepError(`${uh.name}: the slot ${slotName(h.name)} is still held by a walsender 10 s after it was ended`, { hint: "see that host's server log; nothing of the standby's data was touched yet" });
}

async function viaBasebackup(ctx: ExecContext, h: HostSpec, s: ReachableHost, uh: HostSpec, us: ReachableHost, algo: CompressChoice["algo"]): Promise<void> {
  await emptyDataDir(s);
  if (ctx.spec.slots) await freeOwnSlot(ctx, h, uh, us);
  const args = [
    s.pgBasebackup!,
    "--pgdata", s.layout.dataDir,
    "--wal-method=stream",
    "--checkpoint=fast",
    // No fsync of every file here: a copy's first start (it begins like crash recovery) syncs the whole
    // data directory anyway, and syncing twice cost more than the copy itself. Until that start the copy
    // marker stays, so a copy lost to a power cut before it is on disk is copied again.
    "--no-sync",
    "--no-password",
    "--progress",
    // The standby's own slot: the WAL of the copy is kept for it until it streams.
    ...(ctx.spec.slots ? [`--slot=${slotName(h.name)}`] : []),
    ...(h.clone.maxRate ? [`--max-rate=${h.clone.maxRate}`] : []),
    // Compressed by the server, before the network; pg_basebackup unpacks it into the plain copy.
    ...(algo && algo !== "negotiated" ? [`--compress=server-${algo}`] : []),
    "--dbname", replicationConninfo(ctx.spec, s.layout, uh, { application_name: `pgrep_clone_${h.name}` }),
  ];
  const meter = new Meter();
  const onOutput = (chunk: string) => {
    const sample = parseBasebackup(chunk);
    if (!sample) return;
    meter.add(sample);
    ctx.report.live(h.name, `pg_basebackup from ${uh.name}: ${meter.describe()}`);
  };
  try {
    await s.transport.run(args, { user: h.pg.osUser, what: "pg_basebackup", onOutput });
  } catch (e) {
    // Nothing half-made is left to be mistaken for a standby.
    await emptyDataDir(s).catch(() => {});
    throw e instanceof CommandError ? new CommandError({ ...e.result, stderr: withoutProgressLines(e.result.stderr) }, "pg_basebackup") : e;
  } finally {
    ctx.report.live(h.name, undefined);
  }
}

/** What the docs and pg_basebackup leave out of a file-level copy of PGDATA (anchored at its root). */
const RSYNC_EXCLUDES = [
  "/pg_wal/*", "/pg_xlog/*", "/postmaster.pid", "/postmaster.opts", "/pg_replslot/*", "/pg_dynshmem/*", "/pg_notify/*",
  "/pg_serial/*", "/pg_snapshots/*", "/pg_stat_tmp/*", "/pg_subtrans/*", "pgsql_tmp*", "pg_internal.init",
  "/postgresql.auto.conf.tmp", "/current_logfiles.tmp", "/backup_label", "/backup_label.old", "/tablespace_map",
  "/backup_manifest", "/standby.signal", "/recovery.signal", "/recovery.conf", "/recovery.done", "/pgrep-server.log",
  // Sent last, apart (as pg_basebackup does): a copy without it cannot be started, so one cut short is kept
  // for the next setup to continue, and nobody can start it by mistake meanwhile.
  "/global/pg_control",
];

interface RsyncMoved {
  /** Bytes that came over the network for the copy (rsync's own count), and the size of every file copied. */
  received: number;
  total: number;
}

/**
 * `delta`: the data directory holds this cluster's files already (an earlier copy, whole or cut short), and
 * rsync sends only what differs. A copy that fails is left as it is, without its control file.
 */
async function viaRsync(ctx: ExecContext, h: HostSpec, s: ReachableHost, uh: HostSpec, us: ReachableHost, delta: boolean, algo: CompressChoice["algo"]): Promise<RsyncMoved> {
  const tablespaces = await runSql(sqlTarget(uh, us), "SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')");
  if (tablespaces.trim() !== "0") throw new PgrepError(`${uh.name} has tablespaces, which the rsync method does not copy yet`, { hint: "use clone: { method: basebackup }" });
  // A delta copy: --delete-excluded clears what the upstream lacks. Its control file goes first, so that
  // from now until the copy is whole it cannot be started.
  if (!delta) await emptyDataDir(s);
  else await s.transport.run(["rm", "-f", "--", `${s.layout.dataDir}/global/pg_control`], { user: s.layout.admin, what: "setting the old control file aside" });
  const trust = await allowCopy(ctx, h, s, uh, us);
  let session: BackupSession | undefined;
  const forget = onInterrupt(async () => {
    await session?.abort();
    await trust.revoke();
    // The half-made copy stays, without a control file, for the next setup to continue.
    await s.transport.run(["pkill", "-u", h.pg.osUser, "-x", "rsync"], { user: s.layout.admin, allowFailure: true });
  });
  try {
    session = await BackupSession.start(sqlTarget(uh, us), us.caps, `pgrep clone of ${uh.name} for ${h.name}`, uh.name);
    const meter = new Meter();
    const onOutput = (chunk: string, stream: "stdout" | "stderr") => {
      const sample = stream === "stdout" ? parseRsync(chunk) : undefined;
      if (!sample) return;
      meter.add(sample);
      ctx.report.live(h.name, `rsync from ${uh.name}: ${meter.describe()}`);
    };
    const copied = await s.transport.run(
      [
        // progress2: one running total for the whole copy; no-inc-recursive: the total is known up front.
        "rsync", "--archive", "--delete", "--delete-excluded", "--info=progress2", "--no-inc-recursive", "--stats",
        ...(h.clone.maxRate ? [`--bwlimit=${h.clone.maxRate}`] : []),
        ...(algo ? ["--compress", ...(algo === "negotiated" ? [] : [`--compress-choice=${algo}`])] : []),
        // Over an existing copy, a file is compared by its content, never skipped for having the same size
        // and modification second: two servers replaying the same WAL write a relation in the same second,
        // and a skipped file that differs is a silently corrupt standby.
        ...(delta ? ["--checksum"] : []),
        // A file cut short keeps what arrived: continued, rsync sends only the rest of it.
        "--partial",
        ...RSYNC_EXCLUDES.map((x) => `--exclude=${x}`),
        ...trust.rsyncArgs, `${trust.source}/`, `${s.layout.dataDir}/`,
      ],
      { user: h.pg.osUser, what: "rsync of the data directory", onOutput },
    ).finally(() => ctx.report.live(h.name, undefined));
    await copyControlFile(h, s, uh, us);
    const backup = await session.stop();
    session = undefined;
    const own = { owner: s.layout.admin === "root" ? `${h.pg.osUser}:` : "", mode: 0o600, asUser: s.layout.admin };
    // Written byte for byte into the copy (never into the primary's directory): it tells recovery where to start.
    await writeFileAtomic(s.transport, `${s.layout.dataDir}/backup_label`, backup.labelfile, own);
    if (backup.spcmapfile) await writeFileAtomic(s.transport, `${s.layout.dataDir}/tablespace_map`, backup.spcmapfile, own);
    await s.transport.run(["mkdir", "-p", `${s.layout.dataDir}/pg_wal/archive_status`], { user: h.pg.osUser });
    const stat = (name: string) => Number(new RegExp(`^Total ${name}: ([\\d,.]+)`, "m").exec(copied.stdout)?.[1]?.replace(/[,.]/g, "") ?? NaN);
    return { received: stat("bytes received"), total: stat("file size") };
  } catch (e) {
    if (session) {
      // pg_backup_stop on every path; if even that fails, ending the session aborts the backup.
      await session.stop(30_000).catch(() => session!.abort());
    }
    throw e;
  } finally {
    forget();
    await trust.revoke();
  }
}

/** The upstream's control file, read inside the backup after every other file, as pg_basebackup sends it. */
async function copyControlFile(h: HostSpec, s: ReachableHost, uh: HostSpec, us: ReachableHost): Promise<void> {
  const b64 = await runSql(sqlTarget(uh, us), "SELECT encode(pg_read_binary_file('global/pg_control'), 'base64')", "reading the control file");
  await s.transport.run(["sh", "-c", 'set -e; umask 077; base64 -d > "$1.pgrep-tmp"; mv -f -- "$1.pgrep-tmp" "$1"', "sh", `${s.layout.dataDir}/global/pg_control`], {
    user: h.pg.osUser,
    stdin: `${b64}\n`,
    what: "writing the control file",
  });
}

export interface CopyTrust {
  source: string;
  /** "user@address:" before a path on the upstream, or "" on one machine. */
  login: string;
  rsyncArgs: string[];
  revoke(): Promise<void>;
}

/**
 * The standby pulls over SSH with a key made for this copy alone: accepted by the upstream only from the
 * standby's addresses, checked against the upstream's real host keys, and removed afterwards on every path.
 */
export async function allowCopy(ctx: ExecContext, h: HostSpec, s: ReachableHost, uh: HostSpec, us: ReachableHost): Promise<CopyTrust> {
  if (h.connection.kind === "local") return { source: us.layout.dataDir, login: "", rsyncArgs: [], revoke: async () => {} };
  const made = await s.transport.run(["sh", "-c", 'set -e; d=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -C pgrep-clone -f "$d/key"; echo "$d"; cat "$d/key.pub"'], {
    user: h.pg.osUser,
    what: "making a key for the copy",
  });
  const [dir, pub] = made.stdout.trim().split("\n");
  const tag = `${staleTag(ctx.spec.name, h.name)}${Date.now()}`;
  const removeKeyDir = () => s.transport.run(["rm", "-rf", "--", dir!], { user: h.pg.osUser, allowFailure: true });
  try {
    const hostKeys = await us.transport.run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"], { what: "reading its SSH host keys" });
    const port = uh.connection.kind === "ssh" ? uh.connection.peerPort : 22;
    const pattern = hostPattern(uh.address, port);
    const knownHosts = hostKeys.stdout.split("\n").filter((l) => l.trim()).map((l) => `${pattern} ${l.split(" ").slice(0, 2).join(" ")}`).join("\n") + "\n";
    await writeFileAtomic(s.transport, `${dir}/known_hosts`, knownHosts, { mode: 0o600, asUser: h.pg.osUser });
    const from = ipFamily(h.address) ? [h.address] : (ctx.snap.hosts.get(ctx.spec.primary.name) as ReachableHost).resolved[h.address] ?? [];
    const options = `restrict${from.length ? `,from="${from.join(",")}"` : ""}`;
    await us.transport.run(["sh", "-c", AUTHORIZE_SCRIPT, "sh", uh.pg.osUser, options, `${pub!.split(" ").slice(0, 2).join(" ")} ${tag}`, staleTag(ctx.spec.name, h.name)], {
      user: us.layout.admin,
      what: "allowing the copy",
    });
  } catch (e) {
    await removeKeyDir();
    throw e;
  }
  const revoke = async () => {
    await us.transport.run(["sh", "-c", REVOKE_SCRIPT, "sh", uh.pg.osUser, tag], { user: us.layout.admin, allowFailure: true });
    await removeKeyDir();
  };
  const ssh = `ssh -i ${dir}/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${dir}/known_hosts -p ${uh.connection.kind === "ssh" ? uh.connection.peerPort : 22}`;
  const login = `${uh.pg.osUser}@${uh.address}:`;
  return { source: `${login}${us.layout.dataDir}`, login, rsyncArgs: ["-e", ssh], revoke };
}

/** Lines of earlier copies to the same standby (a pgrep killed mid-copy could not revoke them). */
function staleTag(cluster: string, standby: string): string {
  return `pgrep-clone-${cluster}-${standby}-`;
}

// The key is accepted for 10 minutes (by the upstream's own clock): rsync logs in once, at the start, so a
// key left behind by a killed pgrep soon lets nobody in. Lines of earlier copies to this standby go.
// Standbys copied at once from one upstream edit its file at once: each edit holds a lock on it, or one
// copy's rewrite could put back a key another had just revoked.
const AUTHORIZE_SCRIPT = [
  'set -e; h=$(getent passwd "$1" | cut -d: -f6); f="$h/.ssh/authorized_keys"',
  'mkdir -p "$h/.ssh"; touch "$f"; chown "$1:" "$h/.ssh" "$f"; chmod 700 "$h/.ssh"; chmod 600 "$f"',
  'exec 9>>"$f"; flock 9',
  't=$(mktemp); grep -v -F -- "$4" "$f" > "$t" || true; cat "$t" > "$f"; rm -f "$t"',
  String.raw`printf '%s,expiry-time="%s" %s\n' "$2" "$(date -d "+10 min" +%Y%m%d%H%M%S)" "$3" >> "$f"`,
].join("\n");

// Rewrites the file in place (same inode, owner and mode) without the lines tagged for this copy.
const REVOKE_SCRIPT = [
  'h=$(getent passwd "$1" | cut -d: -f6); f="$h/.ssh/authorized_keys"; [ -f "$f" ] || exit 0',
  'exec 9>>"$f"; flock 9',
  't=$(mktemp); grep -v -F -- "$2" "$f" > "$t" || true; cat "$t" > "$f"; rm -f "$t"',
].join("\n");

