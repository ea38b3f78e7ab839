// The cluster as the inventory wants it: typed, resolved (defaults applied, paths absolute), immutable.

export type Role = "primary" | "standby";
export type LayoutName = "debian" | "rhel" | "generic";
export type CloneMethod = "basebackup" | "rsync";
/** auto: measured at the copy's start; lz4 and zstd are asked for by name (rsync: --compress-choice). */
export type CloneCompress = "auto" | "none" | "lz4" | "zstd";

export type Connection =
  | { kind: "local" }
  | {
      kind: "ssh";
      host: string;
      port: number;
      user: string;
      identityFile: string | undefined;
      peerPort: number;
      connectTimeoutMs: number;
      /** Hosts the connection goes through, first to last (ssh.jump or ProxyJump). */
      jumps: SshHop[];
      /** known_hosts for this host when ~/.ssh/config names one (UserKnownHostsFile); else the cluster's. */
      knownHostsFile: string | undefined;
      /** IdentitiesOnly: never offer the agent's keys. */
      identitiesOnly: boolean;
    };

export interface SshHop {
  host: string;
  port: number;
  user: string;
  identityFile: string | undefined;
}

export interface PgSpec {
  /** undefined: detected from the binaries installed on the host (generic layout only). */
  major: number | undefined;
  layout: LayoutName;
  port: number;
  clusterName: string; // debian's <cluster> in /etc/postgresql/<major>/<cluster>
  dataDir: string | undefined; // undefined: the layout's default for the major
  binDir: string | undefined; // undefined: found on the host
  osUser: string;
  passfile: string | undefined; // undefined: ~osUser/.pgpass on the host
  listenAddresses: string;
  /** New clusters get page checksums (an existing cluster keeps what it has). */
  dataChecksums: boolean;
  /** Extra settings from the inventory, already checked against the major. */
  settings: Record<string, string>;
}

export interface HostSpec {
  name: string;
  address: string; // how the other hosts reach this one (replication, pg_hba)
  appAddress: string; // how applications reach it (app-config)
  role: Role;
  upstream: string | undefined; // standbys: the host they stream from
  connection: Connection;
  pg: PgSpec;
  /** How this host is cloned when it is a standby. */
  clone: { method: CloneMethod; maxRate: string | undefined; compress: CloneCompress };
  /** pgrep failover: among standbys that hold the same WAL, the higher is chosen first; 0: never chosen. */
  failoverPriority: number;
  /** Its own server certificate and key (files on this machine), when the inventory gives them. */
  tlsFiles: { cert: string; key: string } | undefined;
}

/** TLS for replication: how standbys verify their upstream, and where the CA comes from. */
export interface TlsSpec {
  sslmode: "verify-full" | "verify-ca";
  /** Files on this machine; undefined: pgrep's own CA in the state directory. */
  caCert: string | undefined;
  caKey: string | undefined;
}

export type PasswordSource =
  | { kind: "env"; name: string }
  | { kind: "file"; path: string }
  | { kind: "generated"; path: string };

/** A pg_hba line for applications, checked and written in pg_hba's own words. */
export interface AccessRule {
  database: string;
  user: string;
  source: string;
  method: string;
  /** Ask for a client certificate too (method cert always does). */
  clientCert: "verify-ca" | "verify-full" | undefined;
  /** Where the inventory says it: "applications.access[0]". */
  origin: string;
}

export interface AppRole {
  name: string;
  password: PasswordSource;
}

export interface AppDatabase {
  name: string;
  owner: string;
  encoding: string;
  locale: string | undefined;
  /** undefined: PUBLIC keeps CONNECT. */
  connect: string[] | undefined;
}

export interface AppsSpec {
  maxLagSeconds: number;
  roles: AppRole[];
  databases: AppDatabase[];
  access: AccessRule[];
}

export type PromoteMethod = "auto" | "trigger_file" | "pg_promote" | "pg_ctl";

export interface ClusterSpec {
  name: string;
  promoteMethod: PromoteMethod;
  fenceCommand: string | undefined;
  inventoryFile: string;
  stateDir: string;
  knownHostsFile: string;
  replicationUser: string;
  password: PasswordSource;
  slots: boolean;
  maxSlotWalKeepSize: string;
  tls: TlsSpec | undefined;
  /** Files on this machine the inventory names (SSH keys, certificates), with where it names them. */
  localFiles: { path: string; line: number; col: number; keyPath: string }[];
  passwordEncryption: "scram-sha-256" | "md5";
  /** Standbys commits wait for: FIRST n (a priority list) or ANY n (a quorum). */
  synchronous: { method: "FIRST" | "ANY"; num: number; names: string[] } | undefined;
  apps: AppsSpec;
  hosts: HostSpec[];
  primary: HostSpec;
  standbys: HostSpec[];
}
