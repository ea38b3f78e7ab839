import type { AppObjects } from "../postgres/app-objects.js";
import type { Layout } from "../postgres/layout.js";
import type { Capabilities } from "../postgres/versions.js";
import type { Transport } from "../transport/types.js";

// What a host really is right now (observe's output). Holds no secrets: password checks are booleans.

export interface ReplicationRow {
  application_name: string;
  client_addr: string | null;
  state: string;
  sync_state: string;
  sent_lsn: string | null;
  replay_lsn: string | null;
  lag_bytes: number | null;
  replay_lag_s: number | null;
}

/** Where a server is in the WAL (a standby's received, an old primary's written): what a failover compares. */
export interface Position {
  name: string;
  inRecovery: boolean;
  /** A primary's: the one it writes; a standby's: the one it receives, or the newest it knows. */
  timeline: number;
  /** WAL on its disk: a standby's received (or replayed, when its receiver has not started since a restart); a primary's written. */
  received: string | null;
  replayed: string | null;
  /** A standby's WAL receiver streams now. */
  streaming: boolean;
}

/** What a light read (or a full one) tells of a standby's position, or why it tells nothing. */
/** `readAt`: when the read began, by the host's clock (ns since the epoch): the cluster lock checks it. */
export type PositionRead = { name: string; position: Position; needsRejoin: boolean; readAt?: string } | { name: string; position: undefined; why: string; readAt?: string };

export interface SqlState {
  inRecovery: boolean;
  versionNum: number;
  sysid: string;
  timeline: number;
  lsn: string | null;
  receiveLsn: string | null;
  /** Standby's own view: WAL it has received but not replayed yet. */
  replayGapBytes: number | null;
  replayLagSeconds: number | null;
  startedAt: string;
  pendingRestart: string[];
  /** Settings that only change at a restart on this server (pg_settings.context = 'postmaster'). */
  restartSettings: string[];
  /**
   * The settings a hot standby must have at least as high as its primary's: the running value, and where
   * a restart would take it from besides pgrep's file (pgrep.conf in every layout): other configuration
   * files, postgresql.auto.conf (which wins), the built-in default.
   */
  standbyMinimums: Record<string, { now: string; others: string | null; auto: string | null; boot: string }>;
  replication: ReplicationRow[];
  position: Position;
  /** A primary's timeline history: each parent timeline and the LSN where it ended (empty on timeline 1). */
  history: { tli: number; switchpoint: string }[];
  receiver: { status: string; conninfo: string | null } | null;
  /** Physical replication slots; wal_status exists on 13+. retained: WAL held back from this server's position. */
  slots: { name: string; active: boolean; retained_bytes: number | null; wal_status: string | null }[];
  role: { canLogin: boolean; replication: boolean; passwordOk: boolean; rewind: boolean } | null;
  /** Application roles and databases (read on the primary by setup only). */
  apps?: AppObjects | undefined;
}

export interface ManagedFiles {
  settings: string | null;
  hba: string | null;
  mainConf: string | null;
  recoveryConf: string | null;
  autoConf: string | null;
  /** The passfile has the lines pgrep would write (its content is never kept). */
  passfileCurrent: boolean;
  /** sha256 of the TLS files in the layout's tlsDir (null: absent); a key's content never leaves its host. */
  tls: { ca: string | null; cert: string | null; key: string | null };
}

export interface ReachableHost {
  name: string;
  reachable: true;
  /** When the probe began, by the host's clock (ns since the epoch): a read the cluster lock did not cover yet is checked against it. */
  readAt?: string;
  transport: Transport;
  layout: Layout;
  caps: Capabilities;
  osUserExists: boolean;
  binVersion: string | undefined;
  psql: string | undefined;
  pgBasebackup: string | undefined;
  pgBasebackupMajor: number | undefined;
  hasRsync: boolean;
  /** pg_rewind of the server's major, beside its binaries. */
  hasPgRewind: boolean;
  systemd: boolean;
  dataDirExists: boolean;
  dataDirEntries: number;
  pgVersion: number | undefined;
  sysid: string | undefined;
  running: boolean;
  startedAt: string | undefined;
  hasStandbySignal: boolean;
  hasRecoveryConf: boolean;
  /** A copy pgrep started into the data directory did not finish (the marker beside it is still there). */
  copyUnfinished: boolean;
  /** A former primary that a promotion left for `pgrep rejoin` (the marker beside the data directory). */
  needsRejoin: boolean;
  /** Replication slots in pg_replslot, read from disk (so also while the server is stopped). */
  slotsOnDisk: string[];
  /** Another program listens on the PostgreSQL port while this server is not running. */
  portBusy: boolean;
  files: ManagedFiles;
  resolved: Record<string, string[]>;
  sql: SqlState | undefined;
  sqlError: string | undefined;
}

export interface UnreachableHost {
  name: string;
  reachable: false;
  error: Error;
}

export type HostState = ReachableHost | UnreachableHost;

export interface ClusterSnapshot {
  major: number;
  hosts: Map<string, HostState>;
}

/**
 * What observe saw in a file pgrep manages: its text, null when it did not exist, undefined for a path
 * observe does not read.
 */
export function observedContent(s: ReachableHost, path: string): string | null | undefined {
  const L = s.layout;
  const known: Record<string, string | null> = {
    [L.settingsFile]: s.files.settings,
    [L.hbaFile]: s.files.hba,
    [L.mainConf]: s.files.mainConf,
    [`${L.dataDir}/recovery.conf`]: s.files.recoveryConf,
    [`${L.dataDir}/postgresql.auto.conf`]: s.files.autoConf,
    [`${L.dataDir}/standby.signal`]: s.hasStandbySignal ? "" : null,
  };
  return path in known ? known[path] : undefined;
}
