import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { Rig } from "../rig/rig.js";

// pgrep init on real hosts: pg1 already runs a cluster made by hand, pg2 and pg3 have only the packages.
// The hosts are reached as an ~/.ssh/config says (the names are the rig's; the file says where sshd is).

let rig: Rig;
let sshConfig: string;
let out: string;

describe("pgrep init", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2", "pg3"]);
    sshConfig = join(rig.dir, "ssh_config");
    writeFileSync(sshConfig, rig.hosts.map((h) => `Host ${h.name}\n  HostName ${h.sshHost}\n  Port ${h.sshPort}\n  User root\n  IdentityFile ${rig.keyFile}\n`).join("\n"));
    out = join(rig.dir, "found.yml");
    await rig.sh("pg1", "pg_createcluster 15 main --start >/dev/null");
    await rig.psql("pg1", "CREATE TABLE by_hand (id int PRIMARY KEY); INSERT INTO by_hand SELECT generate_series(1, 42)");
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("writes an inventory from the hosts: the major, the layout, the hand-made cluster to adopt; setup builds the rest from it", async () => {
    const r = await pgrep(["init", "--primary", "pg1", "--standby", "pg2", "--standby", "pg3", "-o", out, "--ssh-config", sshConfig, "--known-hosts", rig.knownHostsFile]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/the cluster 15\/main on pg1 is adopted \(its data is kept\)/);
    expect(r.stderr).toMatch(/Next: pgrep setup -i .*found\.yml --dry-run/);
    const text = readFileSync(out, "utf8");
    const schema = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text)?.[1];
    expect(schema && existsSync(schema)).toBe(true);
    expect(text).toMatch(/major: 15/);
    expect(text).toMatch(/layout: debian/);
    expect(text).toMatch(/role: primary +# 15\/main on port 5432, online: setup adopts it and keeps its data/);
    expect(text).toMatch(/role: standby +# no 15\/main cluster yet: setup copies it from pg1/);
    const dry = await pgrep(["setup", "-i", out, "--dry-run"]);
    expect(dry.exitCode, dry.all).toBe(7);
    const s = await pgrep(["setup", "-i", out]);
    expect(s.exitCode, s.all).toBe(0);
    expect(s.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
    expect(s.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
    await rig.waitReplayed("pg1", "pg3");
    expect(await rig.psql("pg3", "SELECT count(*) FROM by_hand")).toBe("42");
  });

  it("never writes over a file without --force", async () => {
    const before = readFileSync(out, "utf8");
    const r = await pgrep(["init", "--primary", "pg1", "-o", out, "--ssh-config", sshConfig, "--known-hosts", rig.knownHostsFile]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/found\.yml exists; pgrep init never writes over a file/);
    expect(readFileSync(out, "utf8")).toBe(before);
  });
});
