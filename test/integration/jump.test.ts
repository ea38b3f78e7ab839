import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { Rig } from "../rig/rig.js";

// Database hosts reachable only through a bastion: no port of theirs is published and their names resolve
// only inside the rig's network. How to reach them is only in an OpenSSH client configuration (Host
// patterns, ProxyJump), as an operator's ~/.ssh/config would have it; the inventory names hosts alone.

let rig: Rig;
let inv: string;
const DB = ["pg1", "pg2", "pg3"];

/** SSH logins as `user` that a host's sshd has accepted (its log is the container's). */
const logins = (h: string, user: string) => {
  const r = spawnSync("docker", ["logs", rig.host(h).container.getId()], { encoding: "utf8" });
  return (`${r.stdout}${r.stderr}`.match(new RegExp(`Accepted publickey for ${user} `, "g")) ?? []).length;
};

describe("hosts behind a jump host, reached through an ~/.ssh/config-style file", () => {
  beforeAll(async () => {
    rig = await Rig.startBehind("bastion", DB);
    const b = rig.host("bastion");
    const sshConfig = join(rig.dir, "ssh_config");
    writeFileSync(
      sshConfig,
      `# pgrep reads what ssh would
Host bastion
  HostName ${b.sshHost}
  Port ${b.sshPort}
  User root
  IdentityFile ${rig.keyFile}
  IdentitiesOnly yes

Host pg*
  User root
  IdentityFile ${rig.keyFile}
  ProxyJump bastion
  ConnectTimeout 5
`,
    );
    inv = join(rig.dir, "behind.yml");
    writeFileSync(
      inv,
      `cluster: behind
postgres: { major: 15 }
ssh: { config_file: ${sshConfig}, known_hosts: ${rig.knownHostsFile} }
hosts:
  - { name: pg1, address: pg1, role: primary }
  - { name: pg2, address: pg2, role: standby }
  - { name: pg3, address: pg3, role: standby, clone: { method: rsync } }
`,
    );
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("setup with both clone methods, over one SSH connection to the bastion; --debug shows the path", async () => {
    const before = rig.sshLogins("bastion");
    const r = await pgrep(["setup", "-i", inv, "--debug"]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
    expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
    expect(r.stderr).toMatch(/\[pg3\] rsync from pg1/);
    const b = rig.host("bastion");
    expect(r.stderr).toContain(`pg1: dialling root@pg1:22 via root@${b.sshHost}:${b.sshPort}`);
    expect(rig.sshLogins("bastion") - before).toBe(1);
    // pgrep's own: one each; pg1 has one more, pg3's rsync copy pulling from it (host to host, not via the bastion).
    expect(DB.map((h) => rig.sshLogins(h))).toEqual([2, 1, 1]);
    await rig.psql("pg1", "CREATE TABLE j (id int PRIMARY KEY); INSERT INTO j SELECT generate_series(1, 100)");
    await rig.waitReplayed("pg1", "pg3");
    const s = await pgrep(["status", "-i", inv]);
    expect(s.exitCode, s.all).toBe(0);
  });

  it("switchover, then a failover after PostgreSQL crashed on the primary, through the bastion", async () => {
    const sw = await pgrep(["switchover", "pg2", "-i", inv]);
    expect(sw.exitCode, sw.all).toBe(0);
    await rig.sh("pg2", "pg_ctlcluster 15 main stop -m immediate");
    const f = await pgrep(["failover", "-i", inv]);
    expect(f.exitCode, f.all).toBe(0);
    expect(f.stderr).toMatch(/Recorded in .*: (pg1|pg3) is the primary/);
    const s = await pgrep(["status", "-i", inv]);
    expect(s.stdout).toMatch(/(pg1|pg3)\s+primary\s+running/);
  });

  it("as a sudo user instead of root: rejoin the crashed primary, a rolling restart, a switchover", async () => {
    const rootBefore = DB.map((h) => logins(h, "root"));
    writeFileSync(inv, readFileSync(inv, "utf8").replace("ssh: { config_file:", "ssh: { user: deploy, config_file:"));
    const rj = await pgrep(["rejoin", "pg2", "-i", inv]);
    expect(rj.exitCode, rj.all).toBe(0);
    const rs = await pgrep(["restart", "-i", inv]);
    expect(rs.exitCode, rs.all).toBe(0);
    const primary = /(pg\d)\s+primary/.exec((await pgrep(["status", "-i", inv])).stdout)![1]!;
    const sw = await pgrep(["switchover", "pg2", "-i", inv]);
    expect(sw.exitCode, sw.all).toBe(0);
    const s = await pgrep(["status", "-i", inv]);
    expect(s.exitCode, s.all).toBe(0);
    expect(s.stdout).toMatch(/pg2\s+primary\s+running/);
    expect(s.stdout).toMatch(new RegExp(`${primary}\\s+standby\\s+streaming\\s+pg2`));
    // Every command logged in as deploy: no root login on the database hosts since it was set.
    expect(DB.map((h) => logins(h, "root"))).toEqual(rootBefore);
    expect(DB.every((h) => logins(h, "deploy") >= 4)).toBe(true);
  });

  it("a changed host key on the bastion is refused for every host behind it", async () => {
    await rig.stopSshd("bastion");
    await rig.sh("bastion", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null");
    await rig.startSshd("bastion");
    const r = await pgrep(["status", "-i", inv]);
    expect(r.exitCode, r.all).toBe(3);
    const b = rig.host("bastion");
    for (const h of DB) expect(r.stdout).toContain(`${h}: through jump host ${b.sshHost}: SSH host key for ${b.sshHost}:${b.sshPort} has CHANGED`);
  });
});
