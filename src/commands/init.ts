import { access, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Connections } from "../cluster/connections.js";
import { discoverHost, type FoundCluster, type HostFindings } from "../cluster/discover.js";
import { EXIT, InputError, type ExitCode } from "../errors.js";
import { clusterFromText, shownPath } from "../inventory/index.js";
import type { Output } from "../output.js";

// pgrep init: an inventory written from what the hosts have, dialled through the same SSH settings the
// inventory will use (~/.ssh/config, jump hosts). It describes; it changes nothing on any host.

export interface InitOptions {
  primary: string;
  standbys: string[];
  out: string;
  name: string | undefined;
  force: boolean;
  ssh: { user?: string; identityFile?: string; knownHosts?: string; configFile?: string };
  acceptNewHostKeys: boolean;
}

/** The host's name in the inventory: its first DNS label ("db1.example.com" → db1). */
function shortName(address: string): string {
  return address.split(".")[0]!.replace(/[^A-Za-z0-9_-]/g, "-");
}

/** A YAML flow map of the SSH settings given on the command line (the rest comes from ~/.ssh/config). */
function sshLine(o: InitOptions["ssh"]): string {
  const kv = [
    o.user && `user: ${JSON.stringify(o.user)}`,
    o.identityFile && `identity_file: ${JSON.stringify(o.identityFile)}`,
    o.knownHosts && `known_hosts: ${JSON.stringify(o.knownHosts)}`,
    o.configFile && `config_file: ${JSON.stringify(o.configFile)}`,
  ].filter(Boolean);
  return kv.length ? `ssh: { ${kv.join(", ")} }\n` : "";
}

export async function initCommand(given: InitOptions, out: Output): Promise<ExitCode> {
  // Paths typed on the command line are from here; in the inventory they would be from its directory.
  const abs = (p: string | undefined) => (p === undefined || p === "none" ? p : resolve(p));
  const opts = { ...given, ssh: { ...given.ssh, identityFile: abs(given.ssh.identityFile), knownHosts: abs(given.ssh.knownHosts), configFile: abs(given.ssh.configFile) } };
  const addresses = [opts.primary, ...opts.standbys];
  const names = addresses.map(shortName);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new InputError(`two hosts would be named ${dup}; give each a different first name`);
  if (!opts.force && (await access(opts.out).then(() => true, () => false)))
    throw new InputError(`${opts.out} exists; pgrep init never writes over a file`, "pass another -o FILE, or --force to replace it");
  const hostsYaml = (roles: string[]) => addresses.map((a, i) => `  - { name: ${names[i]}, address: ${JSON.stringify(a)}, role: ${roles[i]} }`).join("\n");
  // A draft inventory resolves each host's SSH connection exactly as the real one will.
  const draft = clusterFromText(opts.out, `cluster: draft\npostgres: { major: 15 }\n${sshLine(opts.ssh)}hosts:\n${hostsYaml(addresses.map((_, i) => (i ? "standby" : "primary")))}\n`);
  const conns = new Connections(draft, { acceptNewHostKeys: opts.acceptNewHostKeys });
  let found: HostFindings[];
  try {
    found = await Promise.all(draft.hosts.map(async (h) => discoverHost(await conns.get(h))));
  } finally {
    await conns.closeAll();
  }
  const [P, ...S] = found as [HostFindings, ...HostFindings[]];
  const layouts = [...new Set(found.map((f) => f.layout))];
  if (layouts.length > 1) throw new InputError(`the hosts have different layouts (${found.map((f, i) => `${names[i]}: ${f.layout}`).join(", ")}); pgrep manages one layout per cluster`);
  const existing = P.clusters.find((c) => c.status.startsWith("online")) ?? P.clusters[0];
  const common = P.majors.filter((m) => S.every((s) => s.majors.includes(m)));
  const major = existing?.major ?? common[0];
  if (major === undefined || !found.every((f) => f.majors.includes(major)))
    throw new InputError(`no PostgreSQL major is installed on every host (${found.map((f, i) => `${names[i]}: ${f.majors.join(", ") || "none"}`).join("; ")})`, "install the same postgresql-N package on every host first");
  const layout = layouts[0]!;
  const clusterName = existing?.name ?? "main";
  const port = existing?.port ?? 5432;
  const describe = (f: HostFindings, i: number): string => {
    const c = f.clusters.find((x) => x.major === major && x.name === clusterName);
    if (!c) return i ? `no ${major}/${clusterName} cluster yet: setup copies it from ${names[0]}` : `no ${major}/${clusterName} cluster yet: setup creates it`;
    const what = `${c.major}/${c.name} on port ${c.port}, ${c.status}`;
    return i === 0 ? `${what}: setup adopts it and keeps its data` : c.status.includes("recovery") ? `${what}: setup adopts it if it streams from ${names[0]}'s cluster` : `${what}: not a standby, so setup refuses to replace it (pgrep setup --force ${names[i]} copies over it)`;
  };
  const schema = fileURLToPath(new URL("../../inventories/inventory.schema.json", import.meta.url));
  const cluster = opts.name ?? names[0]!;
  const text = [
    `# yaml-language-server: $schema=${schema}`,
    `# Written by pgrep init from what the hosts have. Check it, then: pgrep setup -i ${shownPath(opts.out)} --dry-run`,
    `cluster: ${cluster}`,
    "postgres:",
    `  major: ${major}                 # ${existing ? `the cluster running on ${names[0]}` : "the newest major installed on every host"}`,
    `  layout: ${layout}`,
    ...(clusterName !== "main" ? [`  cluster_name: ${clusterName}`] : []),
    `  port: ${port}`,
    ...(layout === "generic" ? [`  data_dir: ${existing?.dataDir ?? `/var/lib/pgsql/${major}/data`}   # where the data lives on every host`] : []),
    sshLine(opts.ssh).trimEnd(),
    "hosts:",
    ...addresses.flatMap((a, i) => [`  - name: ${names[i]}`, `    address: ${JSON.stringify(a)}`, `    role: ${i ? "standby" : "primary"}    # ${describe(found[i]!, i)}`]),
    "",
  ].filter((l) => l !== "").join("\n") + "\n";
  clusterFromText(opts.out, text); // what it writes, pgrep reads
  await writeFile(opts.out, text, { mode: 0o644 });
  const adopted: FoundCluster | undefined = existing && existing.major === major ? existing : undefined;
  out.result(text);
  out.progress(
    [
      `Wrote ${shownPath(opts.out)}: ${names[0]} primary, ${names.slice(1).join(", ") || "no standbys"}; PostgreSQL ${major}, ${layout} layout${adopted ? `; the cluster ${adopted.major}/${adopted.name} on ${names[0]} is adopted (its data is kept)` : ""}.`,
      `Next: pgrep setup -i ${shownPath(opts.out)} --dry-run`,
    ].join("\n"),
  );
  return EXIT.ok;
}
