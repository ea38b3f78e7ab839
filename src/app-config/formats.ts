import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import { renderTemplate } from "../render/index.js";

// How applications connect to the cluster: writes to the primary, reads from the standbys. Pure text from
// the inventory (the record of who is primary); no host is contacted. Passwords appear only when given.

export const APP_FORMATS = ["rails", "rails-initializer", "makara", "octopus", "env", "uri"] as const;
export type AppFormat = (typeof APP_FORMATS)[number];

export interface AppConfigOptions {
  user: string;
  database: string;
  /** The environment variable applications read the password from (referenced unless `password` is set). */
  passwordEnv: string;
  /** --with-secrets: the password itself, written into the output. */
  password: string | undefined;
  /** Rails environment name. */
  environment: string;
  /** rails: also one replica entry per standby. */
  eachStandby: boolean;
  /** A standby further behind than this serves no reads (rails-initializer). */
  maxLagSeconds: number;
  /** After a write, the same session reads from the primary this long (rails-initializer, makara). */
  stickySeconds: number;
}

interface Target {
  hosts: HostSpec[];
  /** libpq's target_session_attrs (needs libpq 14+ for prefer-standby). */
  attrs: "read-write" | "prefer-standby";
}

const q = (s: string) => JSON.stringify(s); // a YAML double-quoted scalar

function writing(spec: ClusterSpec): Target {
  return { hosts: [spec.primary], attrs: "read-write" };
}

function reading(spec: ClusterSpec): Target {
  return { hosts: spec.standbys.length ? spec.standbys : [spec.primary], attrs: "prefer-standby" };
}

function header(spec: ClusterSpec, comment: string): string[] {
  return [
    `${comment} Cluster ${spec.name}: primary ${spec.primary.name}; standbys ${spec.standbys.map((h) => h.name).join(", ") || "none"}.`,
    `${comment} Made by: pgrep app-config -i ${spec.inventoryFile}. Run it again after a promotion.`,
  ];
}

function erbPassword(o: AppConfigOptions): string {
  return o.password !== undefined ? q(o.password) : `<%= ENV[${q(o.passwordEnv)}] %>`;
}

function railsEntry(o: AppConfigOptions, t: Target, replica: boolean): string[] {
  const lines = [
    "    adapter: postgresql",
    `    host: ${q(t.hosts.map((h) => h.appAddress).join(","))}`,
    `    port: ${t.hosts.length > 1 ? q(t.hosts.map((h) => h.pg.port).join(",")) : t.hosts[0]!.pg.port}`,
    `    database: ${q(o.database)}`,
    `    username: ${q(o.user)}`,
    `    password: ${erbPassword(o)}`,
  ];
  // read-write even for one host: if the inventory is stale and that host was demoted, writes fail
  // at connect time instead of reaching a standby.
  if (t.hosts.length > 1 || t.attrs === "read-write") lines.push(`    target_session_attrs: ${t.attrs}`);
  if (replica) lines.push("    replica: true");
  return lines;
}

function rails(spec: ClusterSpec, o: AppConfigOptions): string {
  const lines = [
    ...header(spec, "#"),
    "# config/database.yml (Rails 6+ multiple databases). In app/models/application_record.rb:",
    "#   connects_to database: { writing: :primary, reading: :primary_replica }",
    `# Reads that respect lag (${o.stickySeconds} s after a write, at most ${o.maxLagSeconds} s behind): pgrep app-config --format rails-initializer`,
    `${o.environment}:`,
    "  primary:",
    ...railsEntry(o, writing(spec), false),
    "  primary_replica:",
    ...railsEntry(o, reading(spec), true),
  ];
  if (o.eachStandby)
    for (const h of spec.standbys) lines.push(`  primary_replica_${h.name.replace(/-/g, "_")}:`, ...railsEntry(o, { hosts: [h], attrs: "prefer-standby" }, true));
  return lines.join("\n");
}

function makara(spec: ClusterSpec, o: AppConfigOptions): string {
  const conn = (role: string, h: HostSpec) => [`      - role: ${role}`, `        name: ${q(h.name)}`, `        host: ${q(h.appAddress)}`, `        port: ${h.pg.port}`];
  return [
    ...header(spec, "#"),
    "# config/database.yml for the makara gem: writes go to the master, reads to the slaves.",
    `${o.environment}:`,
    "  adapter: postgresql_makara",
    `  database: ${q(o.database)}`,
    `  username: ${q(o.user)}`,
    `  password: ${erbPassword(o)}`,
    "  makara:",
    `    # After a write the same context reads from the master for ${o.stickySeconds} s (its own writes); a slave`,
    "    # that fails is left out for 30 s. makara cannot see replication lag: before reads that must be",
    "    # current, call ActiveRecord::Base.connection.stick_to_master! (or use the Rails 6+ config).",
    "    sticky: true",
    `    master_ttl: ${o.stickySeconds}`,
    "    blacklist_duration: 30",
    "    master_strategy: failover",
    "    slave_strategy: round_robin",
    "    connections:",
    ...conn("master", spec.primary),
    ...spec.standbys.flatMap((h) => conn("slave", h)),
  ].join("\n");
}

function octopus(spec: ClusterSpec, o: AppConfigOptions): string {
  return [
    ...header(spec, "#"),
    "# config/shards.yml for the ar-octopus gem: database.yml names the primary; these are the replicas.",
    "# Octopus neither sticks to the master after a write nor sees replication lag: read what you just",
    "# wrote with Octopus.using(:master) { … }; with fully_replicated: false, mark models with replicated_model.",
    "octopus:",
    "  replicated: true",
    "  fully_replicated: true",
    "  environments:",
    `    - ${o.environment}`,
    `  ${o.environment}:`,
    ...spec.standbys.flatMap((h) => [
      `    ${h.name.replace(/-/g, "_")}:`,
      "      adapter: postgresql",
      `      host: ${q(h.appAddress)}`,
      `      port: ${h.pg.port}`,
      `      database: ${q(o.database)}`,
      `      username: ${q(o.user)}`,
      `      password: ${erbPassword(o)}`,
    ]),
  ].join("\n");
}

/** A libpq URI; without a password it names none (libpq then reads PGPASSWORD or .pgpass). */
export function libpqUri(t: Target, o: AppConfigOptions, passwordText?: string): string {
  const enc = encodeURIComponent;
  const auth = enc(o.user) + (passwordText !== undefined ? `:${passwordText}` : "");
  const hosts = t.hosts.map((h) => `${h.appAddress.includes(":") ? `[${h.appAddress}]` : h.appAddress}:${h.pg.port}`).join(",");
  return `postgresql://${auth}@${hosts}/${enc(o.database)}${t.hosts.length > 1 || t.attrs === "read-write" ? `?target_session_attrs=${t.attrs}` : ""}`;
}

function env(spec: ClusterSpec, o: AppConfigOptions): string {
  // Without --with-secrets the URLs expand the password variable (docker compose, dotenv-expand, sh).
  const pw = o.password !== undefined ? encodeURIComponent(o.password) : `\${${o.passwordEnv}}`;
  return [
    ...header(spec, "#"),
    `DATABASE_URL=${libpqUri(writing(spec), o, pw)}`,
    `DATABASE_REPLICA_URL=${libpqUri(reading(spec), o, pw)}`,
    ...spec.standbys.map((h) => `DATABASE_REPLICA_${h.name.toUpperCase().replace(/-/g, "_")}_URL=${libpqUri({ hosts: [h], attrs: "prefer-standby" }, o, pw)}`),
  ].join("\n");
}

/** Every host, in order primary first: libpq finds whichever accepts writes, also after a promotion. */
function uri(spec: ClusterSpec, o: AppConfigOptions): string {
  const all: Target = { hosts: [spec.primary, ...spec.standbys], attrs: "read-write" };
  return libpqUri(all, o, o.password !== undefined ? encodeURIComponent(o.password) : undefined);
}

/** A Rails initializer: the DatabaseSelector middleware with a resolver that also checks the standby's lag. */
export function railsInitializer(spec: ClusterSpec, o: AppConfigOptions): string {
  return renderTemplate("rails-replica-reads.rb", {
    cluster: spec.name,
    inventory: spec.inventoryFile,
    delay: o.stickySeconds,
    maxLag: o.maxLagSeconds,
    // Short against the limit, so that a standby that falls behind loses reads soon; never per request.
    cacheSeconds: Math.min(1, o.maxLagSeconds / 4),
  }).trimEnd();
}

export function appConfig(spec: ClusterSpec, format: AppFormat, o: AppConfigOptions): string {
  switch (format) {
    case "rails":
      return rails(spec, o);
    case "rails-initializer":
      return railsInitializer(spec, o);
    case "makara":
      return makara(spec, o);
    case "octopus":
      return octopus(spec, o);
    case "env":
      return env(spec, o);
    case "uri":
      return uri(spec, o);
  }
}
