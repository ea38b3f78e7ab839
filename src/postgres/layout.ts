import { posix } from "node:path";
import type { HostSpec } from "../model/cluster.js";

// Where a layout keeps things and how it controls the server. Pure: the host facts come from observe.

export interface Layout {
  dataDir: string;
  binDir: string;
  /** postgresql.conf: /etc/postgresql/<v>/<c>/ on debian, inside PGDATA on generic. */
  mainConf: string;
  /** The pgrep-managed settings file, included by the main configuration. */
  settingsFile: string;
  /** A line the main configuration must contain for settingsFile to be read (generic), else null. */
  includeLine: string | null;
  hbaFile: string;
  passfile: string;
  /** Replication TLS files (ca.crt, server.crt, server.key), outside the data directory so a copy never carries a key. */
  tlsDir: string;
  /** Socket directory pgrep sets (generic), so that any build of the binaries behaves the same. */
  socketDir: string | null;
  /** Who runs administrative commands: root, or the PostgreSQL OS user when pgrep already is that user. */
  admin: string;
  createCluster: Command;
  control: Record<"start" | "stop" | "restart" | "reload" | "promote", Command>;
  /**
   * The start command goes on checking for a while after the server accepts connections (pg_ctlcluster
   * probes three times, 0.5 s apart, after a 0.5 s pause): pgrep watches the server itself instead.
   */
  startLingers: boolean;
  /** Where a trigger-file promotion looks (only configured when the inventory asks for that method). */
  triggerFile: string;
  serverLog: string;
}

export interface Command {
  argv: string[];
  user: string;
}

export interface HostFacts {
  loginUser: string;
  binDir: string;
  major: number;
  home: string; // the PostgreSQL OS user's home
  systemd: boolean; // systemd is PID 1: services are controlled through it
}

export function debianDataDir(major: number, cluster: string): string {
  return `/var/lib/postgresql/${major}/${cluster}`;
}

/** In the OS user's home, per host name: hosts that share a machine (the local demo) keep their own. */
function tlsDir(host: HostSpec, facts: HostFacts): string {
  return posix.join(facts.home, ".pgrep-tls", host.name);
}

/**
 * The layout before the host was read: its paths (the data directory, the admin user) are right; the bin
 * directory is not known yet, and "~" stands for the OS user's home.
 */
export function draftLayout(host: HostSpec, loginUser: string): Layout {
  return resolveLayout(host, { loginUser, binDir: "", major: host.pg.major ?? 0, home: "~", systemd: false });
}

export function resolveLayout(host: HostSpec, facts: HostFacts): Layout {
  const pg = host.pg;
  const admin = facts.loginUser === pg.osUser ? pg.osUser : "root";
  const passfile = pg.passfile ?? posix.join(facts.home, ".pgpass");
  if (pg.layout === "debian") {
    const v = String(facts.major);
    const c = pg.clusterName;
    const dataDir = pg.dataDir ?? debianDataDir(facts.major, c);
    const confDir = `/etc/postgresql/${v}/${c}`;
    const ctl = (action: string): Command => ({ argv: ["pg_ctlcluster", v, c, action], user: admin });
    return {
      dataDir,
      binDir: facts.binDir,
      mainConf: `${confDir}/postgresql.conf`,
      settingsFile: `${confDir}/conf.d/pgrep.conf`,
      includeLine: null, // debian's postgresql.conf ends with include_dir = 'conf.d'
      hbaFile: `${confDir}/pg_hba.conf`,
      passfile,
      tlsDir: tlsDir(host, facts),
      socketDir: null,
      admin,
      createCluster: {
        // initdb's own options come last, after "--".
        argv: ["pg_createcluster", v, c, "--port", String(pg.port), "--user", pg.osUser, ...(pg.dataDir ? ["--datadir", pg.dataDir] : []), ...(pg.dataChecksums ? ["--", "--data-checksums"] : [])],
        user: admin,
      },
      control: {
        start: ctl("start"),
        stop: ctl("stop"),
        restart: ctl("restart"),
        // A reload is a signal to the postmaster: pg_ctl sends it as pg_ctlcluster would, without a Perl
        // interpreter's start (about 30 ms of CPU on every host a role change reloads).
        reload: facts.binDir ? { argv: [posix.join(facts.binDir, "pg_ctl"), "-D", dataDir, "reload"], user: pg.osUser } : ctl("reload"),
        promote: ctl("promote"),
      },
      startLingers: true,
      triggerFile: `${dataDir}/pgrep.promote`,
      serverLog: `/var/log/postgresql/postgresql-${v}-${c}.log`,
    };
  }
  if (pg.layout === "rhel") return rhelLayout(host, facts, admin, passfile);
  return pgCtlLayout(host, facts, admin, passfile, pg.dataDir!, "/tmp");
}

/** PGDG packages: data and configuration in /var/lib/pgsql/<v>/data, binaries in /usr/pgsql-<v>/bin. */
function rhelLayout(host: HostSpec, facts: HostFacts, admin: string, passfile: string): Layout {
  const v = String(facts.major);
  const dataDir = host.pg.dataDir ?? `/var/lib/pgsql/${v}/data`;
  const base = pgCtlLayout(host, facts, admin, passfile, dataDir, null);
  if (!facts.systemd) return base;
  // The packaged unit reads PGDATA from its own Environment=; pgrep checks that it points here (planner).
  const unit = (action: string): Command => ({ argv: ["systemctl", action, `postgresql-${v}`], user: admin === "root" ? "root" : admin });
  return {
    ...base,
    control: { ...base.control, start: unit("start"), stop: unit("stop"), restart: unit("restart"), reload: unit("reload") },
    serverLog: posix.join(dataDir, "log"),
  };
}

/** Plain data directory controlled with pg_ctl: the generic layout, and rhel without systemd. */
function pgCtlLayout(host: HostSpec, facts: HostFacts, admin: string, passfile: string, dataDir: string, socketDir: string | null): Layout {
  const pg = host.pg;
  const bin = (name: string) => posix.join(facts.binDir, name);
  const serverLog = posix.join(dataDir, "pgrep-server.log");
  const ctl = (...args: string[]): Command => ({ argv: [bin("pg_ctl"), "-D", dataDir, ...args], user: pg.osUser });
  return {
    dataDir,
    binDir: facts.binDir,
    mainConf: posix.join(dataDir, "postgresql.conf"),
    settingsFile: posix.join(dataDir, "pgrep.conf"),
    includeLine: "include_if_exists = 'pgrep.conf'\t# added by pgrep",
    hbaFile: posix.join(dataDir, "pg_hba.conf"),
    passfile,
    tlsDir: tlsDir(host, facts),
    socketDir,
    admin,
    createCluster: {
      argv: [bin("initdb"), "-D", dataDir, "--auth-local=peer", "--auth-host=scram-sha-256", "--encoding=UTF8", ...(pg.dataChecksums ? ["--data-checksums"] : [])],
      user: pg.osUser,
    },
    control: {
      start: ctl("-l", serverLog, "-w", "-t", "120", "start"),
      stop: ctl("-m", "fast", "-w", "-t", "120", "stop"),
      restart: ctl("-l", serverLog, "-m", "fast", "-w", "-t", "120", "restart"),
      reload: ctl("reload"),
      promote: ctl("-w", "-t", "120", "promote"),
    },
    startLingers: false,
    triggerFile: posix.join(dataDir, "pgrep.promote"),
    serverLog,
  };
}
