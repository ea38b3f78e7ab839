// THE ONLY file that compares PostgreSQL major versions. Everything else asks for capabilities.
// Facts: ../shared design notes "postgres-versions.md" (checked on real servers of 10–18).

export const SUPPORTED_MAJORS = [10, 11, 12, 13, 14, 15, 16, 17, 18] as const;

export interface Capabilities {
  major: number;
  /** ≤11: recovery.conf with standby_mode; ≥12: standby.signal + ordinary settings (a recovery.conf is FATAL). */
  standbyMechanism: "recovery.conf" | "standby.signal";
  /** ≤11 defaults recovery_target_timeline to the backup's timeline, so a standby would not follow a promotion. */
  needsExplicitLatestTimeline: boolean;
  /** Setting that keeps WAL for standbys without slots: a segment count ≤12, a size ≥13. */
  walKeep: { name: "wal_keep_segments"; value: string } | { name: "wal_keep_size"; value: string };
  hasMaxSlotWalKeepSize: boolean;
  /** How a changed primary_conninfo takes effect. */
  primaryConninfoApply: "restart" | "reload";
  /** Trigger-file promotion: recovery.conf trigger_file ≤11, the promote_trigger_file setting 12–15, none 16+. */
  triggerFileSetting: "trigger_file" | "promote_trigger_file" | null;
  hasPgPromote: boolean;
  /**
   * A promote request needs its signal file when the startup process acts on it (13+): removing the file
   * withdraws a request that was not acted on yet. Up to 12 the signal alone promotes once it is handled.
   */
  promoteRequestNeedsFile: boolean;
  backupApi: { start: "pg_start_backup" | "pg_backup_start"; stop: "pg_stop_backup" | "pg_backup_stop"; takesExclusiveArg: boolean };
  /** pg_rewind's source may be a role with EXECUTE on four file functions instead of a superuser. */
  rewindWithoutSuperuser: boolean;
  defaultPasswordEncryption: "md5" | "scram-sha-256";
  /** pg_stat_wal_receiver column for the last flushed position. */
  receiverFlushColumn: "received_lsn" | "flushed_lsn";
  /** Standbys must have max_wal_senders ≥ the primary's. */
  walSendersMustMatch: boolean;
  /** Settings a hot standby must have at least as high as its primary's (it refuses to start, or pauses replay, below them). */
  standbyMinimums: string[];
  /** pg_hba option asking for a client certificate: clientcert=1 (≈ verify-ca) ≤11, verify-ca/verify-full 12+. */
  clientCertOption: { "verify-ca": string; "verify-full": string | null };
  /** pg_database's locale provider columns (an upgrade's new cluster is made with the same): none ≤14, ICU 15–16, ICU or builtin 17+. */
  localeColumns: { provider: "datlocprovider"; locale: "daticulocale" | "datlocale" } | null;
  /** initdb turns data checksums on unless told --no-data-checksums (18+). */
  checksumsByDefault: boolean;
  /** pg_upgrade carries the planner's statistics (18+): vacuumdb then only fills in what is missing. */
  upgradeKeepsStatistics: boolean;
  /** pg_database.datcollversion records the collation version each database was made with (15+). */
  hasCollationVersions: boolean;
  /** hashtextextended(), a 64-bit hash of text (11+); hashtext() is 32 bits. */
  hasHashExtended: boolean;
  /** pg_basebackup can have the server compress what it sends (--compress=server-lz4/zstd, 15+); before, it compresses only on its own side, after the network. */
  serverSideCompression: boolean;
}

export function isSupportedMajor(major: number): boolean {
  return (SUPPORTED_MAJORS as readonly number[]).includes(major);
}

export function capabilities(major: number): Capabilities {
  if (!isSupportedMajor(major)) throw new Error(`unsupported PostgreSQL major ${major}`);
  return {
    major,
    standbyMechanism: major <= 11 ? "recovery.conf" : "standby.signal",
    needsExplicitLatestTimeline: major <= 11,
    walKeep: major <= 12 ? { name: "wal_keep_segments", value: "64" } : { name: "wal_keep_size", value: "'1GB'" },
    hasMaxSlotWalKeepSize: major >= 13,
    primaryConninfoApply: major <= 12 ? "restart" : "reload",
    triggerFileSetting: major <= 11 ? "trigger_file" : major <= 15 ? "promote_trigger_file" : null,
    hasPgPromote: major >= 12,
    promoteRequestNeedsFile: major >= 13,
    backupApi:
      major <= 14
        ? { start: "pg_start_backup", stop: "pg_stop_backup", takesExclusiveArg: true }
        : { start: "pg_backup_start", stop: "pg_backup_stop", takesExclusiveArg: false },
    rewindWithoutSuperuser: major >= 11,
    defaultPasswordEncryption: major >= 14 ? "scram-sha-256" : "md5",
    receiverFlushColumn: major <= 12 ? "received_lsn" : "flushed_lsn",
    walSendersMustMatch: major >= 12,
    standbyMinimums: ["max_connections", "max_worker_processes", "max_prepared_transactions", "max_locks_per_transaction", ...(major >= 12 ? ["max_wal_senders"] : [])],
    clientCertOption: major <= 11 ? { "verify-ca": "clientcert=1", "verify-full": null } : { "verify-ca": "clientcert=verify-ca", "verify-full": "clientcert=verify-full" },
    localeColumns: major <= 14 ? null : { provider: "datlocprovider", locale: major <= 16 ? "daticulocale" : "datlocale" },
    checksumsByDefault: major >= 18,
    upgradeKeepsStatistics: major >= 18,
    hasCollationVersions: major >= 15,
    hasHashExtended: major >= 11,
    serverSideCompression: major >= 15,
  };
}

/** "150018" → 15; "100023" → 10. */
export function majorFromVersionNum(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

/**
 * pg_upgrade of these releases fails when max_slot_wal_keep_size is not -1 (fixed in 17.6): `version` is
 * the new binaries' "17.4".
 */
export function upgradeNeedsUnlimitedSlotKeep(version: string): boolean {
  const [major, minor] = version.split(".").map(Number);
  return major === 17 && (minor ?? 0) < 6;
}

/** Settings that exist only in some majors: [first major that has it, last major that has it]. */
const SETTING_RANGES: Record<string, [number, number]> = {
  wal_keep_segments: [10, 12],
  wal_keep_size: [13, 99],
  max_slot_wal_keep_size: [13, 99],
  wal_receiver_create_temp_slot: [13, 99],
  promote_trigger_file: [12, 15],
  stats_temp_directory: [10, 14],
  vacuum_defer_cleanup_age: [10, 15],
  force_parallel_mode: [10, 15],
  debug_parallel_query: [16, 99],
  sync_replication_slots: [17, 99],
  synchronized_standby_slots: [17, 99],
  summarize_wal: [17, 99],
  idle_replication_slot_timeout: [18, 99],
  md5_password_warnings: [18, 99],
};

/** Recovery settings: in recovery.conf up to 11 (unknown in postgresql.conf), ordinary settings from 12. */
const RECOVERY_SETTINGS = new Set([
  "primary_conninfo", "primary_slot_name", "restore_command", "archive_cleanup_command", "recovery_end_command",
  "recovery_target", "recovery_target_lsn", "recovery_target_name", "recovery_target_time", "recovery_target_xid",
  "recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action", "recovery_min_apply_delay",
]);
/** recovery.conf-only keys that no major accepts in postgresql.conf. */
const RECOVERY_CONF_ONLY = new Set(["standby_mode", "trigger_file"]);

/** Why a setting cannot be written to postgresql.conf (or an included file) on this major, or null. */
export function settingProblem(major: number, name: string): string | null {
  const n = name.toLowerCase();
  if (RECOVERY_CONF_ONLY.has(n)) return `${n} is not a postgresql.conf setting in any version (it belonged in recovery.conf)`;
  if (RECOVERY_SETTINGS.has(n) && major <= 11) return `${n} lives in recovery.conf on PostgreSQL ${major}; in postgresql.conf the server refuses to start`;
  const range = SETTING_RANGES[n];
  if (range && (major < range[0] || major > range[1]))
    return `${n} does not exist in PostgreSQL ${major} (${range[1] === 99 ? `${range[0]}+` : `${range[0]}–${range[1]}`}); the server would refuse to start`;
  return null;
}

/** What a non-superuser pg_rewind source role needs (11+). */
export const REWIND_FUNCTIONS = [
  "pg_catalog.pg_ls_dir(text, boolean, boolean)",
  "pg_catalog.pg_stat_file(text, boolean)",
  "pg_catalog.pg_read_binary_file(text)",
  "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
];
