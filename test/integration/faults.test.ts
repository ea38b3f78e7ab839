import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, pgrep } from "../cli.js";
import { dryRun } from "../rig/dry-run.js";
import { Rig } from "../rig/rig.js";

// Faults on real hosts. Each must end with a clear error, the primary untouched (its data, its settings,
// no backup left in progress), nothing half-done on the standby, and a re-run that converges.
// pg2 keeps its data on a small disk (a 128 MB tmpfs at /srv/small). The tests run in order on one
// cluster; each ends with it converged, which is where the next one starts.

let rig: Rig;
let inv: string;
let slow: string;

const DATA = "/srv/small/main";

/** What must not change on the primary: identity, start time, settings files, data. */
const primaryFacts = async () => ({
  sysid: await rig.psql("pg1", "SELECT system_identifier FROM pg_control_system()"),
  started: await rig.psql("pg1", "SELECT pg_postmaster_start_time()"),
  conf: await rig.sh("pg1", "md5sum /etc/postgresql/15/main/*.conf /etc/postgresql/15/main/conf.d/*"),
  rows: await rig.psql("pg1", "SELECT coalesce((SELECT count(*) FROM filler), -1)").catch(() => "none"),
});

/** No base backup (streamed or through the backup API) is running on the primary; waits a little for walsenders to go. */
async function noBackupInProgress(): Promise<void> {
  const q = "SELECT (SELECT count(*) FROM pg_stat_replication WHERE state = 'backup') + (SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup')";
  await rig.waitFor("no backup in progress on pg1", async () => (await rig.psql("pg1", q)) === "0", 15_000);
}

const standbyEntries = async () => Number((await rig.sh("pg2", `ls -A ${DATA} 2>/dev/null | wc -l`)).trim());

async function wipeStandby(): Promise<void> {
  await rig.sh("pg2", `pg_ctlcluster 15 main stop -m fast 2>/dev/null || true; rm -rf ${DATA}/* ${DATA}.pgrep-copy`);
}

/** A throttled setup, started; resolves once pg_basebackup has copied some of the data to pg2. */
async function copyInProgress() {
  const running = execa("node", [CLI, "setup", "-i", slow], { reject: false, env: { NO_COLOR: "1" } });
  await rig.waitFor("pg_basebackup to have copied 4 MB", async () => Number((await rig.sh("pg2", `pgrep -x pg_basebackup >/dev/null && du -sk ${DATA} | cut -f1 || echo 0`)).trim()) > 4096);
  return { running };
}

async function converges(): Promise<void> {
  const r = await pgrep(["setup", "-i", inv]);
  expect(r.exitCode, r.all).toBe(0);
  expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
  expect(await rig.sh("pg2", `test -e ${DATA}.pgrep-copy && echo marker || echo none`)).toBe("none\n");
}

describe("faults", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2"], [], { pg2: { "/srv/small": "rw,size=128m,mode=755" } });
    const hosts = (rate: string) =>
      rig.inventory({ primary: "pg1", file: rate ? "slow.yml" : "rig.yml", extraTop: rate ? `clone: { max_rate: ${rate} }` : "" }).toString();
    inv = hosts("");
    slow = hosts("4M");
    const { writeFileSync } = await import("node:fs");
    for (const f of [inv, slow]) writeFileSync(f, readFileSync(f, "utf8").replace(/(  - name: pg2\n(?:    .*\n)*?    role: standby\n)/, `$1    postgres: { data_dir: ${DATA} }\n`));
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("the standby's disk fills up during the copy: a clear error, the copy removed, and setup converges once there is room", async () => {
    await converges();
    await wipeStandby();
    await rig.sh("pg2", "head -c 100M /dev/zero > /srv/small/other-program.dat");
    // A failing run is watched for the password too, on both hosts and in the server logs.
    const password = readFileSync(join(rig.dir, "rig.state", "replication-password"), "utf8").trim();
    const watch = await rig.watchForSecrets(["pg1", "pg2"], [password]);
    const r = await pgrep(["setup", "-i", inv]);
    expect(await watch.stop()).toEqual([]);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/^pgrep: pg2: pg_basebackup failed \(exit code 1\): .*No space left on device/m);
    expect(r.stderr.trim().split("\n").filter((l) => l.startsWith("pgrep:"))).toHaveLength(1);
    expect(await standbyEntries()).toBe(0);
    await noBackupInProgress();
    expect(await rig.psql("pg1", "SELECT pg_is_in_recovery()")).toBe("f");
    await rig.sh("pg2", "rm /srv/small/other-program.dat");
    await converges();
    await rig.psql("pg1", "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 20) AS pad FROM generate_series(1, 60000) g");
  });

  it("the PostgreSQL port is taken on the standby: refused before anything changes, with the reason; converges once free", async () => {
    await wipeStandby();
    await rig.sh("pg2", `(perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalPort => 5432, Listen => 1, ReuseAddr => 1) or die; sleep 600' >/dev/null 2>&1 &) ; for i in $(seq 1 50); do ss -Hltn 'sport = :5432' | grep -q . && exit 0; sleep 0.1; done; exit 1`);
    const before = await primaryFacts();
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(4);
    expect(r.stderr).toMatch(/pg2: port 5432 is in use by another program, so PostgreSQL could not start there/);
    expect(await standbyEntries()).toBe(0);
    expect(await primaryFacts()).toEqual(before);
    await rig.sh("pg2", "pkill -f '[I]O::Socket::INET'; for i in $(seq 1 50); do ss -Hltn 'sport = :5432' | grep -q . || exit 0; sleep 0.1; done; exit 1");
    await converges();
  });

  it("a wrong replication password on the primary: status says the standby does not stream, setup puts the password back", async () => {
    await rig.psql("pg1", "ALTER ROLE replicator PASSWORD 'not-the-cluster-password'");
    await rig.sh("pg2", "pg_ctlcluster 15 main restart");
    const s = await pgrep(["status", "-i", inv]);
    expect(s.exitCode, s.all).toBe(5);
    expect(s.stdout).toMatch(/pg2\s+standby\s+not streaming/);
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg1\] create or update the replication role — role replicator lacks .*the current password/);
    expect((await pgrep(["status", "-i", inv])).exitCode).toBe(0);
  });

  it("the primary goes down during the copy: the copy fails and is removed, no backup is left, and setup converges", async () => {
    await wipeStandby();
    const rows = (await primaryFacts()).rows;
    const { running } = await copyInProgress();
    await rig.sh("pg1", "pg_ctlcluster 15 main stop -m fast");
    const r = await running;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(String(r.stderr)).toMatch(/^pgrep: pg2: pg_basebackup failed/m);
    expect(await standbyEntries()).toBe(0);
    // The next setup starts the primary again (it must run) and copies.
    await converges();
    await noBackupInProgress();
    expect((await primaryFacts()).rows).toBe(rows);
  });

  it("the SSH connection to the standby is cut mid-copy: pgrep's wrapper ends pg_basebackup, a clear error, no backup left on the primary, and the next setup copies again", async () => {
    await wipeStandby();
    const before = await primaryFacts();
    const { running } = await copyInProgress();
    // Only the SSH sessions die, as when the network to the host goes: what runs in them is pgrep's wrapper's
    // to end (sshd does not signal a command without a terminal), and it must end within seconds.
    await rig.sh("pg2", "pkill -f '[s]shd: root@'; true");
    await rig.waitFor("pgrep's wrapper to end pg_basebackup on pg2", async () => (await rig.sh("pg2", "pgrep -x pg_basebackup || true")).trim() === "", 15_000);
    const r = await running;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).not.toBe(0);
    expect(String(r.stderr)).toMatch(/^pgrep: pg2: /m);
    expect(String(r.stderr)).not.toMatch(/\n\s+at |internal error/);
    await noBackupInProgress();
    expect(await primaryFacts()).toEqual(before);
    // pgrep could not clean up over the cut connection; its marker says the copy is its own.
    expect(await rig.sh("pg2", `test -e ${DATA}.pgrep-copy && echo marker || echo none`)).toBe("marker\n");
    const dry = await dryRun(rig, ["setup", "-i", inv]);
    expect(dry.stdout).toMatch(/\[pg2\] clone from pg1 with pg_basebackup, .* — a copy pgrep started here did not finish/);
    await converges();
  });
});
