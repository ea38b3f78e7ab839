import { suggest } from "./suggest.js";
import { userInfo, homedir } from "node:os";
import { basename, dirname, extname, isAbsolute, join, resolve as resolvePath } from "node:path";
import type { Document, LineCounter } from "yaml";
import type { AppsSpec, ClusterSpec, Connection, HostSpec, PasswordSource } from "../model/cluster.js";
import { checkAccessRule } from "./access.js";
import { capabilities, isSupportedMajor, settingProblem, SUPPORTED_MAJORS } from "../postgres/versions.js";
import { InventoryError, keyPathText, positionOf, type InventoryProblem } from "./load.js";
import type { Inventory } from "./schema.js";
import { loadSshConfig, sshConnection } from "./ssh-connection.js";

/** Settings pgrep owns: an inventory that sets them would fight pgrep (or break replication). */
const MANAGED_SETTINGS: Record<string, string> = {
  port: "use postgres.port (or hosts[].postgres.port)",
  listen_addresses: "use postgres.listen_addresses",
  wal_level: "pgrep sets wal_level = replica; only 'logical' (which includes it) may be set here",
  hot_standby: "pgrep keeps hot_standby on so that standbys answer queries",
  primary_conninfo: "pgrep writes primary_conninfo from the hosts' upstreams",
  primary_slot_name: "pgrep manages replication slots",
  unix_socket_directories: "the layout decides the socket directory",
};

/** Applies defaults and checks what the schema cannot (one primary, references, duplicates, versions). */
export function resolveCluster(file: string, inv: Inventory, doc: Document, lines: LineCounter): ClusterSpec {
  const problems: InventoryProblem[] = [];
  const fail = (path: (string | number)[], message: string) => {
    const p = { ...positionOf(doc, lines, path), keyPath: keyPathText(path), message };
    // A default shared by every host is wrong once, and said once.
    if (!problems.some((q) => q.line === p.line && q.col === p.col && q.message === p.message)) problems.push(p);
  };
  const baseDir = dirname(resolvePath(file));
  const expand = (p: string) => (p.startsWith("~/") ? join(homedir(), p.slice(2)) : isAbsolute(p) ? p : resolvePath(baseDir, p));
  const pg = inv.postgres;
  // Files pgrep reads on this machine (keys, certificates): checked before any host is contacted, by the
  // commands that use them (app-config reads none), each with where the inventory names it.
  const localFiles: ClusterSpec["localFiles"] = [];
  const localFile = (p: string, key: (string | number)[]) => {
    const full = expand(p);
    const keyPath = keyPathText(key);
    // The top-level ssh.identity_file serves every host: named once.
    if (!localFiles.some((f) => f.path === full && f.keyPath === keyPath)) localFiles.push({ path: full, ...positionOf(doc, lines, key), keyPath });
    return full;
  };

  if (pg.major === undefined) {
    if (pg.layout !== "generic") fail(["postgres"], "major is required (e.g. major: 15); only the generic layout can detect it");
  } else if (!isSupportedMajor(pg.major)) {
    fail(["postgres", "major"], `PostgreSQL ${pg.major} is not supported (supported: ${SUPPORTED_MAJORS[0]}–${SUPPORTED_MAJORS.at(-1)})`);
  }
  if (pg.layout !== "debian" && pg.cluster_name) fail(["postgres", "cluster_name"], "only the debian layout has cluster names");
  const settings: Record<string, string> = {};
  for (const [name, value] of Object.entries(pg.settings)) {
    const managed = name.toLowerCase() === "wal_level" && value === "logical" ? undefined : MANAGED_SETTINGS[name.toLowerCase()];
    if (managed) fail(["postgres", "settings", name], managed);
    else if (pg.major !== undefined && isSupportedMajor(pg.major) && settingProblem(pg.major, name)) fail(["postgres", "settings", name], settingProblem(pg.major, name)!);
    settings[name] = typeof value === "boolean" ? (value ? "on" : "off") : String(value);
  }

  if (pg.major !== undefined && isSupportedMajor(pg.major)) {
    const caps = capabilities(pg.major);
    if (inv.promote.method === "trigger_file" && !caps.triggerFileSetting)
      fail(["promote", "method"], `PostgreSQL ${pg.major} has no promotion trigger file (promote_trigger_file was removed in 16 and the server refuses to start with it); use pg_promote or pg_ctl`);
    if (inv.promote.method === "pg_promote" && !caps.hasPgPromote) fail(["promote", "method"], `pg_promote() does not exist in PostgreSQL ${pg.major}; use pg_ctl or trigger_file`);
  }
  const sshConfig = inv.hosts.some((h) => h.connection !== "local") ? loadSshConfig(inv.ssh, { fail, localFile, expand }) : { config: undefined, path: undefined };
  for (const h of inv.hosts) if (h.ssh?.config_file) fail(["hosts", inv.hosts.indexOf(h), "ssh", "config_file"], "config_file belongs under the top-level ssh: (one OpenSSH configuration for the run)");
  const seenNames = new Map<string, number>();
  const seenEndpoints = new Map<string, number>();
  const hosts: HostSpec[] = inv.hosts.map((h, i) => {
    const at = (...k: (string | number)[]) => ["hosts", i, ...k];
    if (seenNames.has(h.name)) fail(at("name"), `duplicate host name '${h.name}' (also hosts[${seenNames.get(h.name)}])`);
    seenNames.set(h.name, i);
    let connection: Connection;
    if (h.connection === "local") {
      if (h.ssh) fail(at("ssh"), "a host with connection: local has no ssh settings");
      connection = { kind: "local" };
    } else {
      connection = sshConnection(inv.ssh, h.ssh, h.address, at, sshConfig, { fail, localFile, expand });
    }
    const hp = h.postgres ?? {};
    const dataDir = hp.data_dir ?? pg.data_dir;
    const port = hp.port ?? pg.port;
    const remotePath = (p: string | undefined, key: (string | number)[]) => {
      if (p === undefined) return undefined;
      if (connection.kind === "local") return expand(p);
      if (!isAbsolute(p)) fail(key, `must be an absolute path on the host (got '${p}')`);
      return p;
    };
    if (pg.layout === "generic" && !dataDir)
      inv.hosts.some((x) => x.postgres?.data_dir)
        ? fail(at("postgres"), "data_dir is required with the generic layout (here or under postgres:)")
        : fail(["postgres"], "data_dir is required with the generic layout (under postgres:, or for each host)");
    const endpoint = `${connection.kind === "local" ? "local" : `${connection.host}:${connection.port}`}|${port}`;
    if (seenEndpoints.has(endpoint))
      fail(at("postgres", "port"), `hosts[${seenEndpoints.get(endpoint)}] already uses port ${port} on the same machine`);
    seenEndpoints.set(endpoint, i);
    const osUser = pg.os_user ?? (connection.kind === "local" && userInfo().uid !== 0 ? userInfo().username : "postgres");
    return {
      name: h.name,
      address: h.address,
      appAddress: h.app_address ?? h.address,
      role: h.role,
      upstream: h.upstream,
      connection,
      pg: {
        major: pg.major,
        layout: pg.layout,
        port,
        clusterName: pg.cluster_name ?? "main",
        dataDir: remotePath(dataDir, hp.data_dir ? at("postgres", "data_dir") : ["postgres", "data_dir"]),
        binDir: remotePath(hp.bin_dir ?? pg.bin_dir, hp.bin_dir ? at("postgres", "bin_dir") : ["postgres", "bin_dir"]),
        osUser,
        passfile: remotePath(hp.passfile, at("postgres", "passfile")),
        listenAddresses: pg.listen_addresses,
        dataChecksums: pg.data_checksums,
        settings,
      },
      clone: { method: h.clone?.method ?? inv.clone.method, maxRate: h.clone?.max_rate ?? inv.clone.max_rate, compress: h.clone?.compress ?? inv.clone.compress },
      failoverPriority: h.failover?.priority ?? 1,
      tlsFiles: h.tls ? { cert: localFile(h.tls.cert, at("tls", "cert")), key: localFile(h.tls.key, at("tls", "key")) } : undefined,
    };
  });

  const primaries = hosts.filter((h) => h.role === "primary");
  if (primaries.length === 0) fail(["hosts"], "no host has role: primary (exactly one is needed)");
  if (primaries.length > 1)
    fail(["hosts", hosts.indexOf(primaries[1]!), "role"], `two primaries: '${primaries[0]!.name}' and '${primaries[1]!.name}' (exactly one is allowed)`);
  hosts.forEach((h, i) => {
    if (h.role === "primary" && h.upstream) fail(["hosts", i, "upstream"], "a primary has no upstream");
    if (h.role !== "standby") return;
    if (h.upstream === undefined) {
      h.upstream = primaries[0]?.name;
      return;
    }
    const up = hosts.find((x) => x.name === h.upstream);
    if (!up) fail(["hosts", i, "upstream"], `unknown host '${h.upstream}'${suggest(h.upstream, hosts.map((x) => x.name))}`);
    else if (up === h) fail(["hosts", i, "upstream"], "a host cannot stream from itself");
  });
  // A cascading standby streams from another standby; following upstreams must end at the primary.
  const named = (n: string | undefined) => hosts.find((x) => x.name === n);
  const inCycle = new Set<string>();
  hosts.forEach((h, i) => {
    if (h.role !== "standby" || inCycle.has(h.name)) return;
    const chain = [h.name];
    let up = named(h.upstream);
    while (up && up.role === "standby" && !chain.includes(up.name)) {
      chain.push(up.name);
      up = named(up.upstream);
    }
    if (up?.name === h.name && chain.length > 1) {
      chain.forEach((n) => inCycle.add(n));
      fail(["hosts", i, "upstream"], `upstreams form a cycle (${[...chain, h.name].join(" → ")}); one of them must stream from the primary`);
    }
  });

  const sync = inv.replication.synchronous;
  let synchronous: ClusterSpec["synchronous"];
  if (sync) {
    const names = Array.isArray(sync) ? sync : sync.of;
    const path = Array.isArray(sync) ? ["replication", "synchronous"] : ["replication", "synchronous", "of"];
    names.forEach((n, i) => {
      const h = hosts.find((x) => x.name === n);
      if (!h) fail([...path, i], `unknown host '${n}'${suggest(n, hosts.map((x) => x.name))}`);
      // Only the primary's own walsenders take part in synchronous replication.
      else if (h.role === "standby" && h.upstream !== primaries[0]?.name && hosts.some((x) => x.name === h.upstream))
        fail([...path, i], `'${n}' streams from the standby '${h.upstream}'; only a standby of the primary can be synchronous`);
    });
    if (new Set(names).size !== names.length) fail(path, "a host is named twice");
    if (!Array.isArray(sync) && sync.any > names.length) fail(["replication", "synchronous", "any"], `any: ${sync.any} of ${names.length} standbys can never be met`);
    synchronous = Array.isArray(sync) ? { method: "FIRST", num: names.length, names } : { method: "ANY", num: sync.any, names };
  }

  let tls: ClusterSpec["tls"];
  const t = inv.replication.tls;
  if (t !== false) {
    const o = t === true ? { verify: "full" as const, ca_cert: undefined, ca_key: undefined } : t;
    if (o.ca_key && !o.ca_cert) fail(["replication", "tls", "ca_key"], "a CA key needs its certificate: add ca_cert");
    const without = inv.hosts.filter((h) => !h.tls).map((h) => h.name);
    if (o.ca_cert && !o.ca_key && without.length)
      fail(["replication", "tls", "ca_cert"], `without ca_key pgrep cannot issue certificates: add ca_key, or give hosts[].tls: { cert, key } to ${without.join(", ")}`);
    tls = {
      sslmode: o.verify === "ca" ? "verify-ca" : "verify-full",
      caCert: o.ca_cert ? localFile(o.ca_cert, ["replication", "tls", "ca_cert"]) : undefined,
      caKey: o.ca_key ? localFile(o.ca_key, ["replication", "tls", "ca_key"]) : undefined,
    };
    if (!o.ca_cert && inv.hosts.some((h) => h.tls)) {
      const i = inv.hosts.findIndex((h) => h.tls);
      fail(["hosts", i, "tls"], "a host certificate needs the CA that issued it: set replication.tls.ca_cert");
    }
  } else {
    inv.hosts.forEach((h, i) => {
      if (h.tls) fail(["hosts", i, "tls"], "replication.tls is off, so this certificate would not be used; set replication.tls: { ca_cert: … }");
    });
  }

  let password: PasswordSource;
  const src = inv.replication.password;
  const stateDir = join(baseDir, `${basename(file, extname(file))}.state`);
  if (!src) password = { kind: "generated", path: join(stateDir, "replication-password") };
  else if ("env" in src) password = { kind: "env", name: src.env };
  else password = { kind: "file", path: expand(src.file) };

  const apps = resolveApps(inv, stateDir, expand, fail, pg.major !== undefined && isSupportedMajor(pg.major) ? pg.major : undefined);

  if (problems.length) throw new InventoryError(file, problems);
  const primary = primaries[0]!;
  return {
    name: inv.cluster,
    promoteMethod: inv.promote.method,
    fenceCommand: inv.promote.fence_command,
    inventoryFile: resolvePath(file),
    stateDir,
    knownHostsFile: expand(inv.ssh.known_hosts ?? "~/.ssh/known_hosts"),
    replicationUser: inv.replication.user,
    password,
    slots: inv.replication.slots,
    maxSlotWalKeepSize: inv.replication.max_slot_wal_keep_size,
    tls,
    localFiles,
    passwordEncryption: inv.replication.password_encryption,
    synchronous,
    apps,
    hosts,
    primary,
    standbys: hosts.filter((h) => h.role === "standby"),
  };
}

/** applications: roles and databases checked against each other, access rules against pg_hba's grammar. */
function resolveApps(inv: Inventory, stateDir: string, expand: (p: string) => string, fail: (path: (string | number)[], message: string) => void, major: number | undefined): AppsSpec {
  const a = inv.applications;
  const at = (...k: (string | number)[]) => ["applications", ...k];
  const roleNames = new Map<string, number>();
  const roles = a.roles.map((r, i) => {
    if (roleNames.has(r.name)) fail(at("roles", i, "name"), `role '${r.name}' is declared twice (also roles[${roleNames.get(r.name)}])`);
    if (r.name === inv.replication.user) fail(at("roles", i, "name"), `'${r.name}' is the replication role; applications need a role of their own`);
    if (r.name.startsWith("pg_")) fail(at("roles", i, "name"), "role names starting with pg_ are reserved by PostgreSQL");
    roleNames.set(r.name, i);
    const src = r.password;
    const password: PasswordSource = !src ? { kind: "generated", path: join(stateDir, `role-${r.name}-password`) } : "env" in src ? { kind: "env", name: src.env } : { kind: "file", path: expand(src.file) };
    return { name: r.name, password };
  });
  const dbNames = new Map<string, number>();
  const databases = a.databases.map((d, i) => {
    if (dbNames.has(d.name)) fail(at("databases", i, "name"), `database '${d.name}' is declared twice (also databases[${dbNames.get(d.name)}])`);
    if (["postgres", "template0", "template1"].includes(d.name)) fail(at("databases", i, "name"), `'${d.name}' is one of PostgreSQL's own databases; applications need one of their own`);
    dbNames.set(d.name, i);
    return { name: d.name, owner: d.owner, encoding: d.encoding.toUpperCase(), locale: d.locale, connect: d.connect };
  });
  const caps = major === undefined ? undefined : capabilities(major);
  const access = a.access.flatMap((r, i) => {
    const { rule, problems } = checkAccessRule(r, i, inv.replication.tls !== false, caps);
    for (const p of problems) fail(at("access", i, p.key), p.message);
    return rule ? [rule] : [];
  });
  return { maxLagSeconds: a.max_lag_seconds, roles, databases, access };
}
