import { z } from "zod";

// The inventory's shape. Unknown keys are errors (a typo must not silently fall back to a default).

const name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, "use letters, digits, '-' and '_' (at most 63)");
const port = z.number().int().min(1).max(65535);
const path = z.string().min(1);

const secretSource = z.union([
  z.object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name") }).strict(),
  z.object({ file: path }).strict(),
]);

const sshSettings = z
  .object({
    host: z.string().min(1).optional(),
    port: port.optional(),
    user: z.string().min(1).optional(),
    identity_file: path.optional(),
    known_hosts: path.optional(),
    /** The port other hosts use to reach this host's sshd (rsync clones), when it differs from port. */
    peer_port: port.optional(),
    /** Seconds to wait for a host's SSH connection (TCP, handshake and login) before calling it unreachable. */
    connect_timeout: z.number().positive().max(600).optional(),
    /** Hosts to go through, in order (OpenSSH's ProxyJump): "user@bastion:22". Each hop's host key is checked. */
    jump: z.array(z.string().regex(/^(?:[^@\s]+@)?(?:\[[^\]\s]+\]|[^@:\s[\]]+)(?::\d{1,5})?$/, "a hop like user@bastion:22")).optional(),
    /** An OpenSSH client configuration to read (default ~/.ssh/config; "none": read none). Top level only. */
    config_file: path.optional(),
  })
  .strict();

const cloneMethods = ["basebackup", "rsync"] as const;
/** auto: compressed when the link to the upstream measures slower than compressing is (under 1 Gbit/s). */
const cloneCompress = ["auto", "none", "lz4", "zstd"] as const;
const rate = z.string().regex(/^[1-9][0-9]*[kM]?$/, "a rate like 500k or 20M (bytes per second)");

const postgresHost = z
  .object({
    port: port.optional(),
    data_dir: path.optional(),
    bin_dir: path.optional(),
    passfile: path.optional(),
  })
  .strict();

const roleName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a lower-case role name");
const databaseName = z.string().regex(/^[a-z_][a-z0-9_-]{0,62}$/i, "a database name: letters, digits, '_' and '-'");

/** What applications need: pg_hba rules on every host, their roles and databases on the primary, a lag limit. */
const applications = z
  .object({
    /** A standby further behind than this serves no application reads (app-config's resolver, status). */
    max_lag_seconds: z.number().positive().max(86400).default(10),
    roles: z
      .array(
        z
          .object({
            name: roleName,
            /** Stored as a SCRAM verifier pgrep computes; generated beside the inventory when not given. */
            password: secretSource.optional(),
          })
          .strict(),
      )
      .default([]),
    databases: z
      .array(
        z
          .object({
            name: databaseName,
            owner: roleName,
            encoding: z.string().regex(/^[A-Za-z0-9_]+$/, "an encoding name like UTF8").default("UTF8"),
            /** LC_COLLATE and LC_CTYPE of a new database (e.g. C.UTF-8); the server's default when not given. */
            locale: z.string().regex(/^[A-Za-z0-9_.@-]+$/, "a locale name like C.UTF-8").optional(),
            /** Only these roles may connect (CONNECT is taken from PUBLIC); every role when not given. */
            connect: z.array(roleName).min(1).optional(),
          })
          .strict(),
      )
      .default([]),
    /** pg_hba rules for applications, on every host (standbys serve reads). */
    access: z
      .array(
        z
          .object({
            database: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
            user: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
            /** A CIDR or address, a host name (.suffix matches a domain), samenet, samehost or all. */
            source: z.string().min(1),
            method: z.enum(["scram-sha-256", "md5", "password", "cert", "trust", "reject"]).default("scram-sha-256"),
            /** Also ask for a client certificate signed by the server's CA (TLS only). */
            client_cert: z.enum(["verify-ca", "verify-full"]).optional(),
            /** trust from everywhere admits anyone: refused unless this says it is meant. */
            allow_open: z.boolean().optional(),
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .default({});

export const layouts = ["debian", "rhel", "generic"] as const;

const settingValue = z.union([z.string(), z.number(), z.boolean()]);

export const inventorySchema = z
  .object({
    cluster: name,
    postgres: z
      .object({
        major: z.number().int().optional(),
        layout: z.enum(layouts).default("debian"),
        port: port.default(5432),
        cluster_name: name.optional(),
        data_dir: path.optional(),
        bin_dir: path.optional(),
        os_user: z.string().min(1).optional(),
        listen_addresses: z.string().min(1).default("*"),
        /** New clusters are made with page checksums (initdb --data-checksums): corruption is found on read. */
        data_checksums: z.boolean().default(true),
        /** More postgresql.conf settings for every host, written after pgrep's own. */
        settings: z.record(z.string().regex(/^[a-z_][a-z0-9_.]*$/i, "a setting name"), settingValue).default({}),
      })
      .strict(),
    replication: z
      .object({
        user: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a lower-case role name").default("replicator"),
        password: secretSource.optional(),
        /** A physical replication slot per standby on its upstream, so that the WAL it needs is kept. */
        slots: z.boolean().default(true),
        /** The most WAL slots may hold (13+); beyond it a slot is invalidated rather than fill the disk. */
        max_slot_wal_keep_size: z.string().regex(/^(-1|[1-9][0-9]*(MB|GB|TB))$/, "a size like 10GB, or -1 for no limit").default("10GB"),
        /**
         * TLS for replication connections: true (pgrep's own CA, verify-full), or the verification and a
         * CA of your own. Certificates given per host go under hosts[].tls.
         */
        tls: z
          .union([
            z.boolean(),
            z.object({ verify: z.enum(["full", "ca"]).default("full"), ca_cert: path.optional(), ca_key: path.optional() }).strict(),
          ])
          .default(false),
        /** How the replication role's password is stored: SCRAM (default) or md5 for old clients and poolers. */
        password_encryption: z.enum(["scram-sha-256", "md5"]).default("scram-sha-256"),
        /** Commits wait for these standbys: a list (every one), or a quorum { any: n, of: [names] }. */
        synchronous: z
          .union([z.array(name).min(1), z.object({ any: z.number().int().min(1), of: z.array(name).min(1) }).strict()])
          .optional(),
      })
      .strict()
      .default({}),
    ssh: sshSettings.default({}),
    clone: z
      .object({
        method: z.enum(cloneMethods).default("basebackup"),
        max_rate: rate.optional(),
        compress: z.enum(cloneCompress).default("auto"),
      })
      .strict()
      .default({}),
    promote: z
      .object({
        method: z.enum(["auto", "trigger_file", "pg_promote", "pg_ctl"]).default("auto"),
        /** Run on this machine to cut the old primary off (power it down, detach its address…): sh -c, $1 = name, $2 = address. */
        fence_command: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    applications,
    hosts: z
      .array(
        z
          .object({
            name,
            address: z.string().min(1),
            /** How applications reach this host (app-config), when it differs from address. */
            app_address: z.string().min(1).optional(),
            role: z.enum(["primary", "standby"]),
            upstream: name.optional(),
            connection: z.enum(["ssh", "local"]).default("ssh"),
            ssh: sshSettings.optional(),
            postgres: postgresHost.optional(),
            clone: z.object({ method: z.enum(cloneMethods).optional(), max_rate: rate.optional(), compress: z.enum(cloneCompress).optional() }).strict().optional(),
            /** pgrep failover: among standbys that hold the same WAL, a higher priority is chosen first; 0: never chosen. */
            failover: z.object({ priority: z.number().int().min(0).max(1000).default(1) }).strict().optional(),
            /** This host's own server certificate and key (PEM files on this machine), instead of one pgrep issues. */
            tls: z.object({ cert: path, key: path }).strict().optional(),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

export type InventoryInput = z.input<typeof inventorySchema>;
export type Inventory = z.output<typeof inventorySchema>;
