import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseHop } from "../../../src/inventory/ssh-config.js";
import { load, problems } from "./inventory-text.js";

// The hosts' SSH settings from an OpenSSH client configuration, as `ssh NAME` would read them: first
// value wins, the inventory's own values win over the file, and what would weaken checking is refused.

const dir = mkdtempSync(join(tmpdir(), "pgrep-sshcfg-"));
const config = (text: string) => {
  const f = join(dir, `config-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text);
  return f;
};
const inventory = (file: string, ssh = "", hostSsh = "") => `cluster: prod
postgres: { major: 15 }
ssh: { config_file: ${file}${ssh ? `, ${ssh}` : ""} }
hosts:
  - { name: db1, address: db1, role: primary${hostSsh ? `, ssh: { ${hostSsh} }` : ""} }
  - { name: db2, address: db2, role: standby }
`;

const FLEET = `
Host db1
  HostName 10.1.0.11
  Port 2201
Host db*
  User deploy
  HostName 10.1.0.%h
  IdentityFile ${dir}/fleet_key
  ProxyJump ops@bastion
  ConnectTimeout 7
Host bastion
  HostName bastion.example.net
  Port 2222
  IdentityFile ${dir}/bastion_key
Host *
  User nobody
  Port 2999
`;
writeFileSync(join(dir, "fleet_key"), "k");
writeFileSync(join(dir, "bastion_key"), "k");

describe("~/.ssh/config", () => {
  it("Host patterns in order, first value wins: HostName, User, Port, IdentityFile, ProxyJump, ConnectTimeout", () => {
    const c = load(inventory(config(FLEET)));
    expect(c.hosts[0]!.connection).toMatchObject({ host: "10.1.0.11", port: 2201, user: "deploy", identityFile: `${dir}/fleet_key`, connectTimeoutMs: 7000, peerPort: 22 });
    expect(c.hosts[1]!.connection).toMatchObject({ host: "10.1.0.db2", port: 2999, user: "deploy" });
    // The hop's own name is looked up too.
    expect(c.hosts[0]!.connection).toMatchObject({ jumps: [{ host: "bastion.example.net", port: 2222, user: "ops", identityFile: `${dir}/bastion_key` }] });
  });

  it("the inventory's own values win over the file", () => {
    const c = load(inventory(config(FLEET), "user: admin", "port: 22, jump: ['root@other:2022']"));
    expect(c.hosts[0]!.connection).toMatchObject({ host: "10.1.0.11", port: 22, user: "admin", jumps: [{ host: "other", port: 2022, user: "root" }] });
    expect(c.hosts[1]!.connection).toMatchObject({ user: "admin", port: 2999 });
  });

  it("refuses what would turn host-key checking off, and ProxyCommand, naming the file and the host", () => {
    const f = config("Host db2\n  StrictHostKeyChecking no\nHost db1\n  UserKnownHostsFile /dev/null\n  ProxyCommand nc %h %p\n");
    const p = problems(inventory(f)).join("\n");
    expect(p).toContain(`${f}, for db2: StrictHostKeyChecking no turns host-key checking off`);
    expect(p).toContain(`${f}, for db1: UserKnownHostsFile /dev/null turns host-key checking off`);
    expect(p).toContain(`${f}, for db1: ProxyCommand is not supported`);
  });

  it("a named file that is not there is an error; none reads nothing", () => {
    expect(problems(inventory(`${dir}/missing`))).toEqual([expect.stringMatching(/ssh\.config_file: cannot read .*missing \(no such file\)/)]);
    expect(load(inventory("none")).hosts[0]!.connection).toMatchObject({ host: "db1", port: 22, user: "root", jumps: [] });
  });

  it("UserKnownHostsFile is this host's known_hosts unless the inventory names one", () => {
    const f = config(`Host db1\n  UserKnownHostsFile ${dir}/kh\n`);
    expect(load(inventory(f)).hosts[0]!.connection).toMatchObject({ knownHostsFile: `${dir}/kh` });
    expect(load(inventory(f, `known_hosts: ${dir}/mine`)).hosts[0]!.connection).toMatchObject({ knownHostsFile: undefined });
  });
});

describe("jump hops", () => {
  it("reads user@host:port and its shorter forms", () => {
    expect(parseHop("ops@bastion:2222")).toEqual({ user: "ops", host: "bastion", port: 2222 });
    expect(parseHop("bastion")).toEqual({ user: undefined, host: "bastion", port: undefined });
    expect(parseHop("[fd00::1]:22")).toEqual({ user: undefined, host: "fd00::1", port: 22 });
    expect(parseHop("a b")).toBeUndefined();
  });
});
