import type { ClusterSpec } from "../../../src/model/cluster.js";
import type { ClusterSnapshot, ReachableHost, SqlState } from "../../../src/cluster/state.js";
import { parseInventory } from "../../../src/inventory/load.js";
import { resolveCluster } from "../../../src/inventory/resolve.js";
import { resolveLayout } from "../../../src/postgres/layout.js";
import { capabilities } from "../../../src/postgres/versions.js";
import type { Transport } from "../../../src/transport/types.js";

// Pure planner inputs: an inventory, and host states as observe would report them.

const noTransport: Transport = {
  host: "none",
  loginUser: "root",
  run: () => Promise.reject(new Error("the planner must not run commands")),
  spawn: () => {
    throw new Error("the planner must not run commands");
  },
  close: async () => {},
};

export function spec(major: number, layout: "debian" | "rhel" | "generic" = "debian", extra = ""): ClusterSpec {
  const text = `cluster: c1
postgres: { major: ${major}, layout: ${layout}${layout === "generic" ? ", data_dir: /pg/data, bin_dir: /opt/pg/bin" : ""}${extra} }
hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: 10.0.0.2, role: standby }
`;
  const { inventory, doc, lines } = parseInventory("/inv/c1.yml", text);
  return resolveCluster("/inv/c1.yml", inventory, doc, lines);
}

/** A host with no cluster yet. */
export function emptyHost(s: ClusterSpec, name: string, systemd = false): ReachableHost {
  const h = s.hosts.find((x) => x.name === name)!;
  const major = h.pg.major!;
  return {
    name,
    reachable: true,
    transport: noTransport,
    layout: resolveLayout(h, { loginUser: "root", binDir: h.pg.binDir ?? `/usr/lib/postgresql/${major}/bin`, major, home: "/var/lib/postgresql", systemd }),
    caps: capabilities(major),
    osUserExists: true,
    binVersion: `${major}.1`,
    psql: "/usr/bin/psql",
    pgBasebackup: "/usr/bin/pg_basebackup",
    pgBasebackupMajor: major,
    hasRsync: true,
    hasPgRewind: true,
    systemd,
    dataDirExists: false,
    dataDirEntries: 0,
    pgVersion: undefined,
    sysid: undefined,
    running: false,
    startedAt: undefined,
    hasStandbySignal: false,
    hasRecoveryConf: false,
    copyUnfinished: false,
    needsRejoin: false,
    slotsOnDisk: [],
    portBusy: false,
    files: { settings: null, hba: null, mainConf: null, recoveryConf: null, autoConf: null, passfileCurrent: false, tls: { ca: null, cert: null, key: null } },
    resolved: {},
    sql: undefined,
    sqlError: undefined,
  };
}

export function sql(over: Partial<SqlState> = {}): SqlState {
  const inRecovery = over.inRecovery ?? false;
  return {
    position: { name: "", inRecovery, timeline: 1, received: "0/3000000", replayed: "0/3000000", streaming: inRecovery },
    history: [],
    inRecovery: false,
    versionNum: 150000,
    sysid: "7000000000000000001",
    timeline: 1,
    lsn: "0/3000000",
    receiveLsn: null,
    replayGapBytes: null,
    replayLagSeconds: null,
    startedAt: "2026-01-01 00:00:00+00",
    pendingRestart: [],
    standbyMinimums: Object.fromEntries(
      Object.entries({ max_connections: "100", max_worker_processes: "8", max_prepared_transactions: "0", max_locks_per_transaction: "64", max_wal_senders: "10" }).map(([n, v]) => [n, { now: v, others: n === "max_connections" ? "100" : null, auto: null, boot: v }]),
    ),
    restartSettings: ["max_connections", "wal_level", "max_wal_senders", "max_replication_slots", "wal_log_hints", "listen_addresses", "shared_buffers"],
    replication: [],
    receiver: null,
    slots: [],
    role: { canLogin: true, replication: true, passwordOk: true, rewind: true },
    ...over,
  };
}

/** A running cluster with the given system identifier. */
export function runningHost(s: ClusterSpec, name: string, sysid: string, inRecovery: boolean): ReachableHost {
  const h = emptyHost(s, name);
  return {
    ...h,
    dataDirExists: true,
    dataDirEntries: 20,
    pgVersion: h.caps.major,
    sysid,
    running: true,
    hasStandbySignal: inRecovery,
    files: { ...h.files, mainConf: "port = 5432\n", hba: "local all all peer\n", passfileCurrent: true },
    sql: sql({ sysid, inRecovery }),
  };
}

export function snapshot(major: number, ...hosts: ReachableHost[]): ClusterSnapshot {
  return { major, hosts: new Map(hosts.map((h) => [h.name, h])) };
}
