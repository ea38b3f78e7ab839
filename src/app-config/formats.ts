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

/**
 * A value in a YAML file that Rails (and octopus) first run through ERB: a YAML double-quoted scalar (JSON's
 * escapes are YAML's), with ERB's one special sequence doubled so that "<%" stays text.
 */
const q = (s: string) => JSON.stringify(s).replaceAll("<%", "<%%");

/** Text on one line, for a comment: a line break in a name must not end the comment. */
const oneLine = (s: string) => s.replace(/[\r\n\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1));

/**
 * Every host that can become primary, the primary first and then the standbys likeliest to be chosen: with
 * target_session_attrs=read-write, libpq skips those that do not accept writes, so an application finds the
 * new primary by itself after promote, failover or switchover.
 */
function writing(spec: ClusterSpec): Target {
  const next = [...spec.standbys].sort((a, b) => b.failoverPriority - a.failoverPriority);
  return { hosts: [spec.primary, ...next], attrs: "read-write" };
}

/** Standbys first, then the primary: reads prefer a standby and fall back to whichever host answers. */
function reading(spec: ClusterSpec): Target {
  return { hosts: [...spec.standbys, spec.primary], attrs: "prefer-standby" };
}

function header(spec: ClusterSpec, comment: string): string[] {
  return [
    `${comment} Cluster ${oneLine(spec.name)}: primary ${spec.primary.name}; standbys ${spec.standbys.map((h) => h.name).join(", ") || "none"}.`,
    `${comment} Made by: pgrep app-config -i ${oneLine(spec.inventoryFile)}. Writers list every host and find the primary`,
    `${comment} themselves after a promotion; run it again when hosts are added or removed.`,
  ];
}

/**
 * The password as ERB puts it into the YAML: the variable's value quoted by Psych itself (the YAML parser
 * that reads the file next, so loaded already), intact whatever it holds, null when the variable is unset;
 * or the password itself with --with-secrets.
 */
function erbPassword(o: AppConfigOptions): string {
  return o.password !== undefined ? q(o.password) : `<%= Psych.to_json(ENV[${q(o.passwordEnv)}]).chomp %>`;
}

/** libpq waits this long per host before it tries the next (a host whose packets are dropped). */
export const CONNECT_TIMEOUT_SECONDS = 5;

/** Where a YAML entry connects: one host, or several with what libpq needs to pick among them. */
function hostFields(t: Target, indent: string): string[] {
  const lines = [`host: ${q(t.hosts.map((h) => h.appAddress).join(","))}`, `port: ${t.hosts.length > 1 ? q(t.hosts.map((h) => h.pg.port).join(",")) : t.hosts[0]!.pg.port}`];
  // read-write even for one host: if that host was demoted, writes fail at connect time instead of
  // reaching a standby.
  if (t.hosts.length > 1 || t.attrs === "read-write") lines.push(`target_session_attrs: ${t.attrs}`);
  if (t.hosts.length > 1) lines.push(`connect_timeout: ${CONNECT_TIMEOUT_SECONDS}`);
  return lines.map((l) => indent + l);
}

function railsEntry(o: AppConfigOptions, t: Target, replica: boolean): string[] {
  const lines = ["    adapter: postgresql", ...hostFields(t, "    "), `    database: ${q(o.database)}`, `    username: ${q(o.user)}`, `    password: ${erbPassword(o)}`];
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
  const conn = (role: string, name: string, t: Target) => [`      - role: ${role}`, `        name: ${q(name)}`, ...hostFields(t, "        ")];
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
    // The master lists every host: libpq connects to whichever accepts writes, also after a promotion.
    ...conn("master", "primary", writing(spec)),
    ...spec.standbys.flatMap((h) => conn("slave", h.name, { hosts: [h], attrs: "prefer-standby" })),
  ].join("\n");
}

function octopus(spec: ClusterSpec, o: AppConfigOptions): string {
  return [
    ...header(spec, "#"),
    "# config/shards.yml for the ar-octopus gem: these are the replicas. The master is database.yml's own",
    `# ${o.environment} entry: to find the primary after a promotion, give it these lines (libpq picks the host):`,
    ...hostFields(writing(spec), "#   "),
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
export function libpqUri(t: Target, o: AppConfigOptions, password?: string): string {
  const enc = encodeURIComponent;
  const auth = enc(o.user) + (password !== undefined ? `:${enc(password)}` : "");
  const hosts = t.hosts.map((h) => `${h.appAddress.includes(":") ? `[${h.appAddress}]` : h.appAddress}:${h.pg.port}`).join(",");
  const params = [...(t.hosts.length > 1 || t.attrs === "read-write" ? [`target_session_attrs=${t.attrs}`] : []), ...(t.hosts.length > 1 ? [`connect_timeout=${CONNECT_TIMEOUT_SECONDS}`] : [])];
  return `postgresql://${auth}@${hosts}/${enc(o.database)}${params.length ? `?${params.join("&")}` : ""}`;
}

/**
 * An env file that docker compose, dotenv and sh read alike: every value in double quotes, where the
 * encoded URLs hold nothing those three treat specially. Without --with-secrets the URLs carry no password
 * and PGPASSWORD takes the variable's value as it is (libpq and the drivers built on it read it), so any
 * password works: put into a URL unencoded, a "@", "/" or "#" would break it. The file holds only the
 * reference: the value is already in the application's environment (the variable the inventory names),
 * and PGPASSWORD is libpq's own name for it there. pgrep never runs anything with it.
 */
function env(spec: ClusterSpec, o: AppConfigOptions): string {
  const url = (name: string, t: Target) => `${name}="${libpqUri(t, o, o.password)}"`;
  return [
    ...header(spec, "#"),
    url("DATABASE_URL", writing(spec)),
    url("DATABASE_REPLICA_URL", reading(spec)),
    ...spec.standbys.map((h) => url(`DATABASE_REPLICA_${h.name.toUpperCase().replace(/-/g, "_")}_URL`, { hosts: [h], attrs: "prefer-standby" })),
    ...(o.password === undefined ? [`PGPASSWORD="\${${o.passwordEnv}}"`] : []),
  ].join("\n");
}

/** Every host, the primary first: libpq finds whichever accepts writes, also after a promotion. */
function uri(spec: ClusterSpec, o: AppConfigOptions): string {
  return libpqUri(writing(spec), o, o.password);
}

/** A Rails initializer: the DatabaseSelector middleware with a resolver that also checks the standby's lag. */
export function railsInitializer(spec: ClusterSpec, o: AppConfigOptions): string {
  return renderTemplate("rails-replica-reads.rb", {
    cluster: oneLine(spec.name),
    inventory: oneLine(spec.inventoryFile),
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
