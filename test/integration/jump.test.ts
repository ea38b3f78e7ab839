import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { execa } from "execa";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, pgrep } from "../cli.js";
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

  it("as the sudo user: promote --fence, a failover with PostgreSQL crashed, a re-clone by both methods, unfollow", async () => {
    const rootBefore = DB.map((h) => logins(h, "root"));
    const deployBefore = DB.map((h) => logins(h, "deploy"));
    const primaryNow = async () => /(pg\d)\s+primary/.exec((await pgrep(["status", "-i", inv])).stdout)![1]!;
    const p = await pgrep(["promote", "pg3", "-i", inv, "--fence"]);
    expect(p.exitCode, p.all).toBe(0);
    expect(p.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg3/);
    // What pg3 acknowledged just before its PostgreSQL crashed is salvaged by the failover (its host is up).
    await rig.psql("pg3", "INSERT INTO j VALUES (101)");
    await rig.sh("pg3", "pg_ctlcluster 15 main stop -m immediate");
    const f = await pgrep(["failover", "-i", inv]);
    expect(f.exitCode, f.all).toBe(0);
    const now = await primaryNow();
    expect(["pg1", "pg2"]).toContain(now);
    expect(await rig.psql(now, "SELECT count(*) FROM j")).toBe("101");
    const rj = await pgrep(["rejoin", "pg3", "-i", inv]);
    expect(rj.exitCode, rj.all).toBe(0);

    // Both standbys' data gone: setup copies them again, pg3 by rsync, the other by pg_basebackup.
    const other = now === "pg1" ? "pg2" : "pg1";
    for (const h of [other, "pg3"]) await rig.sh(h, "pg_ctlcluster 15 main stop -m fast; rm -rf /var/lib/postgresql/15/main/*");
    const s = await pgrep(["setup", "-i", inv]);
    expect(s.exitCode, s.all).toBe(0);
    expect(s.stderr).toMatch(new RegExp(`\\[pg3\\] rsync from ${now}`));
    expect(s.stderr).toMatch(new RegExp(`\\[${other}\\] pg_basebackup from ${now}`));
    expect(s.stdout).toMatch(new RegExp(`${other}\\s+standby\\s+streaming\\s+${now}`));
    expect(s.stdout).toMatch(new RegExp(`pg3\\s+standby\\s+streaming\\s+${now}`));
    await rig.waitReplayed(now, "pg3");
    expect(await rig.psql("pg3", "SELECT count(*) FROM j")).toBe("101");

    const solo = join(rig.dir, "solo.yml");
    const u = await pgrep(["unfollow", "pg3", "-i", inv, "--name", "solo"]);
    expect(u.exitCode, u.all).toBe(0);
    expect(await rig.psql("pg3", "SELECT pg_is_in_recovery()")).toBe("f");
    const st = await pgrep(["status", "-i", solo]);
    expect(st.exitCode, st.all).toBe(0);
    expect(st.stdout).toMatch(/pg3\s+primary\s+running/);
    expect(DB.map((h) => logins(h, "root"))).toEqual(rootBefore);
    expect(DB.every((h, i) => logins(h, "deploy") > deployBefore[i]!)).toBe(true);
  });

  it("failures through the bastion: it freezes mid-copy, a host behind it freezes, it is frozen when dialled", async () => {
    const primaryNow = /(pg\d)\s+primary/.exec((await pgrep(["status", "-i", inv])).stdout)![1]!;
    const standby = primaryNow === "pg1" ? "pg2" : "pg1";
    const pause = (h: string) => spawnSync("docker", ["pause", rig.host(h).container.getId()]);
    const unpause = (h: string) => spawnSync("docker", ["unpause", rig.host(h).container.getId()]);

    // The bastion freezes while pgrep copies to a host behind it: pgrep gives up with the host named, and
    // the host's own tether ends everything pgrep started there (no heartbeat reaches it any more).
    const slow = inv.replace(/\.yml$/, "-slow.yml");
    writeFileSync(slow, `${readFileSync(inv, "utf8")}clone: { max_rate: 1M }\n`);
    if (existsSync(inv.replace(/\.yml$/, ".state"))) cpSync(inv.replace(/\.yml$/, ".state"), slow.replace(/\.yml$/, ".state"), { recursive: true });
    await rig.sh(standby, "pg_ctlcluster 15 main stop -m fast; rm -rf /var/lib/postgresql/15/main/*");
    const mine = () => rig.sh(standby, "ps -eo args | grep -E '(^|/)(pg_basebackup|psql) |pgrep-tether|pgrep-heartbeat|\\.pgrep/locks/' | grep -v -F 'grep -E' || true");
    const run = execa("node", [CLI, "setup", "-i", slow], { reject: false, env: { NO_COLOR: "1" } });
    try {
      await rig.waitFor("the copy to run", async () => (await rig.sh(standby, "pgrep -x pg_basebackup >/dev/null && echo y || echo n")).trim() === "y");
      pause("bastion");
      // 8 s without a heartbeat, a second of the watchdog's look, up to 3 s of TERM before KILL. As the
      // sudo user, the wrapper must run as the command's user to reach what pg_basebackup forked.
      await rig.waitFor("pgrep's processes behind the frozen bastion to end", async () => (await mine()).trim() === "", 20_000);
      const r = await run;
      expect(r.exitCode, r.all).not.toBe(0);
      expect(String(r.stderr)).toMatch(new RegExp(`^pgrep: ${standby}: `, "m"));
      expect(String(r.stderr)).not.toMatch(/\n\s+at |internal error/);
    } finally {
      unpause("bastion");
      run.kill("SIGKILL");
    }
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`${standby}\\s+standby\\s+streaming\\s+${primaryNow}`));

    // The primary behind the bastion freezes: its dial is bounded by the connect timeout, the standby is promoted.
    await rig.waitReplayed(primaryNow, standby);
    pause(primaryNow);
    try {
      const f = await pgrep(["promote", standby, "-i", inv, "--old-primary-is-down", "--debug"]);
      expect(f.exitCode, f.all).toBe(0);
      expect(f.stderr).toMatch(new RegExp(`^debug: \\S+ ${primaryNow}: not connected after \\d+ ms`, "m"));
      expect(await rig.psql(standby, "SELECT pg_is_in_recovery()")).toBe("f");
    } finally {
      unpause(primaryNow);
    }
    // It thawed as the primary it was; rejoin rewinds it.
    const rj = await pgrep(["rejoin", primaryNow, "-i", inv]);
    expect(rj.exitCode, rj.all).toBe(0);
    expect(rj.stdout).toMatch(new RegExp(`${primaryNow}\\s+standby\\s+streaming\\s+${standby}`));

    // The bastion frozen before pgrep dials: every host behind it unreachable, named, bounded (exit 3).
    pause("bastion");
    try {
      const st = await pgrep(["status", "-i", inv]);
      expect(st.exitCode, st.all).toBe(3);
      for (const h of ["pg1", "pg2"]) expect(st.stdout).toMatch(new RegExp(`${h}: through jump host ${rig.host("bastion").sshHost}: `));
    } finally {
      unpause("bastion");
    }
  });

  it("a changed host key on the bastion is refused for every host behind it", async () => {
    await rig.stopSshd("bastion");
    await rig.sh("bastion", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null");
    await rig.startSshd("bastion");
    const b = rig.host("bastion");
    // pg3 left the cluster by unfollow: its own inventory reaches it the same way.
    for (const [file, hosts] of [[inv, ["pg1", "pg2"]], [join(rig.dir, "solo.yml"), ["pg3"]]] as const) {
      const r = await pgrep(["status", "-i", file]);
      expect(r.exitCode, r.all).toBe(3);
      for (const h of hosts) expect(r.stdout).toContain(`${h}: through jump host ${b.sshHost}: SSH host key for ${b.sshHost}:${b.sshPort} has CHANGED`);
    }
  });
});
