import { describe, expect, it } from "vitest";
import { loadInventoryText } from "../../../src/inventory/load.js";
import { load, problems } from "./inventory-text.js";
import { loadCluster } from "../../../src/inventory/index.js";

const ok = `cluster: prod
postgres: { major: 15 }
ssh: { user: deploy, identity_file: keys/id }
hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: 10.0.0.2, role: standby, ssh: { port: 2222 } }
`;

describe("inventory", () => {
  it("resolves defaults: debian layout, port 5432, replicator, a generated password in the state dir", () => {
    const c = load(ok);
    expect(c.primary.name).toBe("db1");
    expect(c.standbys.map((h) => h.upstream)).toEqual(["db1"]);
    expect(c.primary.pg).toMatchObject({ layout: "debian", port: 5432, clusterName: "main", osUser: "postgres" });
    expect(c.replicationUser).toBe("replicator");
    expect(c.password).toEqual({ kind: "generated", path: "/srv/inv.state/replication-password" });
    expect(c.hosts[1]!.connection).toEqual({ kind: "ssh", host: "10.0.0.2", port: 2222, user: "deploy", identityFile: "/srv/keys/id", peerPort: 2222, connectTimeoutMs: 3000, jumps: [], knownHostsFile: undefined, identitiesOnly: false });
  });

  it("loads the shipped demo inventory", async () => {
    const c = await loadCluster("inventories/local.yml");
    expect(c.hosts.map((h) => [h.name, h.role, h.pg.port, h.connection.kind])).toEqual([
      ["pg1", "primary", 5433, "local"],
      ["pg2", "standby", 5434, "local"],
      ["pg3", "standby", 5435, "local"],
    ]);
  });

  it("loads the shipped production example", async () => {
    const c = await loadCluster("inventories/example.yml");
    expect(c.password).toEqual({ kind: "env", name: "PGREP_REPLICATION_PASSWORD" });
    expect(c.hosts[2]!.connection).toMatchObject({ kind: "ssh", host: "bastion.example.com", port: 2213, user: "deploy" });
  });

  it.each([
    ["YAML syntax", "cluster: [x\n", /^\/srv\/inv\.yml:2:1: YAML: /],
    ["unknown key, at the key", ok.replace("major: 15", "major: 15, prot: 5"), /^\/srv\/inv\.yml:2:24: postgres\.prot: unknown key 'prot' \(did you mean 'port'\?\)$/],
    ["wrong type", ok.replace("major: 15", "major: fifteen"), /^\/srv\/inv\.yml:2:20: postgres\.major: expected number, got string$/],
    ["port out of range", ok.replace("port: 2222", "port: 70000"), /^\/srv\/inv\.yml:6:65: hosts\[1\]\.ssh\.port: must be at most 65535$/],
    ["bad role", ok.replace("role: standby", "role: replica"), /hosts\[1\]\.role: must be one of 'primary', 'standby' \(got 'replica'\)$/],
    ["missing cluster", ok.replace("cluster: prod\n", ""), /^\/srv\/inv\.yml:1:1: cluster: is required$/],
    ["major outside 10–18", ok.replace("major: 15", "major: 9"), /^\/srv\/inv\.yml:2:20: postgres\.major: PostgreSQL 9 is not supported \(supported: 10–18\)$/],
    ["no primary", ok.replace("role: primary", "role: standby"), /no host has role: primary/],
    ["two primaries", ok.replace("role: standby", "role: primary"), /^\/srv\/inv\.yml:6:\d+: hosts\[1\]\.role: two primaries: 'db1' and 'db2'/],
    ["unknown upstream", ok.replace("role: standby,", "role: standby, upstream: dbb2,"), /hosts\[1\]\.upstream: unknown host 'dbb2' \(did you mean 'db2'\?\)$/],
    ["duplicate name", ok.replace("name: db2", "name: db1"), /hosts\[1\]\.name: duplicate host name 'db1'/],
    ["password both env and file", ok.replace("hosts:", "replication: { password: { env: A, file: b } }\nhosts:"), /replication\.password/],
    ["relative data_dir on a remote host", ok.replace("major: 15", "major: 15, data_dir: data"), /postgres\.data_dir: must be an absolute path on the host/],
    ["generic needs data_dir", ok.replace("major: 15", "major: 15, layout: generic"), /data_dir is required with the generic layout/],
    ["a setting the major does not have", ok.replace("major: 15", "major: 15, settings: { wal_keep_segments: 64 }"), /postgres\.settings\.wal_keep_segments: wal_keep_segments does not exist in PostgreSQL 15 \(10–12\); the server would refuse to start$/],
    ["a recovery setting in postgresql.conf on 11", ok.replace("major: 15", "major: 11, settings: { restore_command: 'cp x y' }"), /postgres\.settings\.restore_command: restore_command lives in recovery\.conf on PostgreSQL 11/],
    ["promote_trigger_file on 16", ok.replace("major: 15", "major: 16, settings: { promote_trigger_file: /tmp/x }"), /promote_trigger_file does not exist in PostgreSQL 16 \(12–15\)/],
    ["a setting pgrep manages", ok.replace("major: 15", "major: 15, settings: { wal_level: minimal }"), /postgres\.settings\.wal_level: pgrep sets wal_level = replica/],
    ["an unknown clone method", ok.replace("hosts:", "clone: { method: scp }\nhosts:"), /clone\.method: must be one of 'basebackup', 'rsync' \(got 'scp'\)$/],
    ["a bad rate", ok.replace("hosts:", "clone: { max_rate: fast }\nhosts:"), /clone\.max_rate: a rate like 500k or 20M/],
    ["a connect timeout that is not a number of seconds", ok.replace("ssh: { user:", "ssh: { connect_timeout: 0, user:"), /ssh\.connect_timeout: /],
    ["same port twice on one machine", "cluster: c\npostgres: { layout: generic, data_dir: /d }\nhosts:\n  - { name: a, address: x, role: primary, connection: local }\n  - { name: b, address: x, role: standby, connection: local }\n", /hosts\[1\]\.postgres\.port: hosts\[0\] already uses port 5432 on the same machine/],
  ])("%s → one precise line", (_name, text, expected) => {
    const p = problems(text);
    expect(p.some((l) => expected.test(l)), p.join("\n")).toBe(true);
    for (const l of p) expect(l).toMatch(/^\/srv\/inv\.yml:\d+:\d+: /);
  });

  it("ssh.connect_timeout: seconds, for every host", () => {
    const c = load(ok.replace("ssh: { user:", "ssh: { connect_timeout: 2.5, user:"));
    expect(c.hosts.map((h) => (h.connection.kind === "ssh" ? h.connection.connectTimeoutMs : 0))).toEqual([2500, 2500]);
  });

  it("an inventory over 1 MiB is refused before it is parsed", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const file = `${mkdtempSync(`${tmpdir()}/pgrep-inv-`)}/huge.yml`;
    writeFileSync(file, `# ${"x".repeat(1024 * 1024)}\n`);
    await expect(loadInventoryText(file)).rejects.toThrow(/the inventory is 1024 KiB; pgrep reads at most 1024 KiB/);
  });
});
