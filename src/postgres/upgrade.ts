import { posix } from "node:path";
import { settingProblem, type Capabilities } from "./versions.js";

// A major upgrade's PostgreSQL side, pure: the new cluster's initdb options, the configuration carried
// over from the old major, and the commands of the procedure the pg_upgrade documentation gives for
// streaming standbys (pg_upgrade --link on the primary, then rsync --hard-links --size-only from it).

/** What the new cluster must share with the old one for pg_upgrade to accept it (read on the old primary). */
export interface OldClusterFacts {
  encoding: string;
  collate: string;
  ctype: string;
  /** pg_database.datlocprovider: c (libc), i (ICU), b (builtin); undefined before 15. */
  provider: string | undefined;
  /** The ICU or builtin locale, with that provider. */
  locale: string | undefined;
  checksums: boolean;
  walSegmentBytes: number;
}

/** initdb options that make the new cluster match the old one (pg_upgrade refuses any difference). */
export function initdbOptions(old: OldClusterFacts, next: Capabilities): string[] {
  const o = [`--encoding=${old.encoding}`, `--lc-collate=${old.collate}`, `--lc-ctype=${old.ctype}`];
  if (old.provider === "i" && old.locale) o.push("--locale-provider=icu", `--icu-locale=${old.locale}`);
  if (old.provider === "b" && old.locale) o.push("--locale-provider=builtin", `--builtin-locale=${old.locale}`);
  if (old.checksums) o.push("--data-checksums");
  else if (next.checksumsByDefault) o.push("--no-data-checksums");
  const mb = old.walSegmentBytes / (1024 * 1024);
  if (mb !== 16) o.push(`--wal-segsize=${mb}`);
  return o;
}

/** Settings whose values name the cluster's own paths (Debian: /var/lib/postgresql/13/main, 13-main.pid, '13/main'). */
const PATH_SETTINGS = new Set(["data_directory", "hba_file", "ident_file", "external_pid_file", "cluster_name", "stats_temp_directory", "include", "include_if_exists", "include_dir"]);

/**
 * A configuration file of the old major as the new one reads it: paths that name the old major's cluster
 * name the new one's, and settings the new major does not have are commented out (the server would refuse
 * to start), each with why. Everything else, comments included, is kept as the DBA wrote it.
 */
export function carriedConfig(text: string, oldMajor: number, newMajor: number, cluster: string): { text: string; dropped: string[] } {
  const dropped: string[] = [];
  const esc = cluster.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const oldPath = new RegExp(`(^|[/'"])${oldMajor}([/-])${esc}(?=$|[/.'"-])`, "g");
  const lines = text.split("\n").map((line) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=|\s)/.exec(line);
    if (!m) return line;
    const name = m[1]!.toLowerCase();
    const problem = settingProblem(newMajor, name);
    if (problem) {
      dropped.push(name);
      return `# ${line}\t# pgrep upgrade: ${problem}`;
    }
    if (!PATH_SETTINGS.has(name)) return line;
    return line.replace(oldPath, `$1${newMajor}$2${cluster}`);
  });
  return { text: lines.join("\n"), dropped };
}

/** The deepest directory holding both data directories: rsync's root, so that both keep their paths. */
export function commonParent(a: string, b: string): string {
  const x = a.split("/");
  const y = b.split("/");
  let n = 0;
  while (n < x.length - 1 && n < y.length - 1 && x[n] === y[n]) n++;
  return x.slice(0, n).join("/") || "/";
}

/**
 * Files of the old data directory a standby keeps as its own: with them the standby's old cluster can
 * still start as a standby if the upgrade is rolled back. The new cluster links none of them.
 */
const STANDBY_OWN = ["global/pg_control", "global/pg_control.old", "standby.signal", "recovery.signal", "recovery.conf", "postgresql.auto.conf", "postmaster.opts", "postmaster.pid", "pg_wal/", "pg_replslot/", "pgrep.promote"];

/**
 * rsync on the standby, pulling the old and the new data directories from the primary in one transfer,
 * so that --hard-links makes the standby's new files links to its own old ones (the documented procedure:
 * only the new catalog and what differs in size travel). `source` is "user@host:" or "" on one machine.
 */
export function upgradeRsyncArgv(oldDir: string, newDir: string, source: string, rsyncArgs: string[]): string[] {
  const root = commonParent(oldDir, newDir);
  const rel = (d: string) => posix.relative(root, d);
  return [
    "rsync", "--archive", "--delete", "--hard-links", "--size-only", "--no-inc-recursive", "--relative", "--no-implied-dirs", "--stats",
    ...STANDBY_OWN.map((f) => `--exclude=/${rel(oldDir)}/${f}`),
    `--exclude=/${rel(newDir)}/pg_upgrade_output.d/`,
    ...rsyncArgs,
    `${source}${root}/./${rel(oldDir)}`,
    `${source}${root}/./${rel(newDir)}`,
    `${root}/`,
  ];
}

/** From rsync --stats: the bytes of the files it had to send, of all the files' bytes. */
export function rsyncMoved(stats: string): { sent: number; total: number } | undefined {
  const num = (label: string) => {
    const m = new RegExp(`^${label}: ([\\d,]+)`, "m").exec(stats);
    return m ? Number(m[1]!.replaceAll(",", "")) : undefined;
  };
  const sent = num("Total transferred file size");
  const total = num("Total file size");
  return sent === undefined || total === undefined ? undefined : { sent, total };
}

export interface PgUpgradeRun {
  oldBin: string;
  newBin: string;
  oldData: string;
  newData: string;
  /** postgresql.conf when it lives outside the data directory (Debian). */
  oldConf: string | null;
  newConf: string | null;
  oldPort: number;
  check: boolean;
}

/** pg_upgrade --link; run in a private directory (its sockets and logs go there). */
export function pgUpgradeArgv(r: PgUpgradeRun): string[] {
  const conf = (c: string | null) => (c ? `-c config_file=${c}` : "");
  return [
    posix.join(r.newBin, "pg_upgrade"), "--link", ...(r.check ? ["--check"] : []),
    "-b", r.oldBin, "-B", r.newBin, "-d", r.oldData, "-D", r.newData,
    // A live check connects to the running old server on its own port; the real run starts both on
    // pg_upgrade's default port, which applications do not use.
    ...(r.check ? ["-p", String(r.oldPort)] : []),
    ...(r.oldConf ? ["-o", conf(r.oldConf)] : []),
    ...(r.newConf ? ["-O", conf(r.newConf)] : []),
  ];
}
