import { spawnSync } from "node:child_process";
import { cpSync, readFileSync } from "node:fs";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, pgrep } from "../cli.js";
import { dryRun } from "../rig/dry-run.js";
import { Rig } from "../rig/rig.js";

// Failovers as real failures shape them, on three real hosts (PostgreSQL 15, Debian layout): a standby
// held behind (its WAL receiver frozen while the primary commits more WAL than socket buffers hold), a
// primary lost with its host or only its PostgreSQL, one that thaws after it was declared down, a
// promotion that does not finish, locks taken by different logins, and packets dropped on a connection.
// The tests follow each other: the inventory records who is primary when each starts.

let rig: Rig;
let inv: string;
const DATA = "/var/lib/postgresql/15/main";
const ROWS = 300_000; // ~40 MB of WAL: far more than a frozen receiver's socket can hold

const roleOf = (file: string, name: string) => new RegExp(`- name: ${name}\\n(?:    .*\\n)*?    role: (\\w+)`).exec(readFileSync(file, "utf8"))?.[1];
const primary = () => ["pg1", "pg2", "pg3"].find((h) => roleOf(inv, h) === "primary")!;
const standbys = () => ["pg1", "pg2", "pg3"].filter((h) => roleOf(inv, h) === "standby");
const count = (h: string) => rig.psql(h, "SELECT count(*) FROM acked");
let expected = 0;

/** Rows committed on the primary in one transaction (acknowledged when this returns). */
async function commitRows(on: string): Promise<void> {
  await rig.psql(on, `INSERT INTO acked SELECT g, md5(g::text) FROM generate_series(${expected + 1}, ${expected + ROWS}) g`);
  expected += ROWS;
}

/** What a refused or dry run could have changed: files, markers, start times and roles (not WAL positions). */
const state = (h: string) =>
  rig.sh(h, `md5sum /etc/postgresql/15/main/conf.d/pgrep.conf /etc/postgresql/15/main/pg_hba.conf 2>&1; ls ${DATA} ${DATA}.pgrep-rejoin 2>&1 | grep -E 'signal|rejoin'; runuser -u postgres -- psql -XAtc 'SELECT pg_postmaster_start_time(), pg_is_in_recovery()' 2>&1; true`);
const everything = async () => [readFileSync(inv, "utf8"), ...(await Promise.all(["pg1", "pg2", "pg3"].map(state)))];

/** The standby's own WAL receiver streams on this timeline (its upstream's view alone can be fooled). */
async function followsOn(h: string, timeline: number): Promise<void> {
  await rig.waitFor(`${h} streaming on timeline ${timeline}`, async () => (await rig.psql(h, "SELECT coalesce((SELECT status || ' ' || received_tli FROM pg_stat_wal_receiver), '')")) === `streaming ${timeline}`);
}

const timelineOf = async (h: string) => Number(await rig.psql(h, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"));

describe("choosing, salvaging and fencing on a failover", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2", "pg3"], [], {}, ["NET_ADMIN"]);
    inv = rig.inventory({ primary: "pg1" });
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    // Nothing writes WAL after a test's last commit by itself: no autovacuum on it, nobody reads it on the primary.
    await rig.psql("pg1", "CREATE TABLE acked (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)");
  });
  afterAll(async () => {
    for (const h of rig?.hosts ?? []) spawnSync("docker", ["unpause", h.container.getId()]);
    await rig?.stop();
  });

  it("a standby held behind, then the primary's host lost: promoting it is refused, failover picks the other, it follows on the new timeline, no row is lost", async () => {
    await rig.holdReceiver("pg3");
    await commitRows("pg1");
    await rig.waitReplayed("pg1", "pg2");
    spawnSync("docker", ["pause", rig.host("pg1").container.getId()]);
    // pg3 reads what its socket held, and no more: the rest is only on pg1 and pg2.
    await rig.releaseReceiver("pg3");

    const before = await Promise.all(["pg2", "pg3"].map(state));
    const inventoryBefore = readFileSync(inv, "utf8");
    const refused = await pgrep(["promote", "pg3", "-i", inv, "--old-primary-is-down"]);
    expect(refused.exitCode, refused.all).toBe(4);
    expect(refused.stderr).toMatch(/^pgrep: pg2 has received [\d.]+ MB \(\d+ bytes\) more WAL than pg3; promoting pg3 would lose it, and it could not follow$/m);
    expect(refused.stderr).toMatch(/^hint: pgrep failover -i \S+ --old-primary-is-down promotes the standby that holds the most; --force promotes pg3 anyway/m);
    expect(await Promise.all(["pg2", "pg3"].map(state))).toEqual(before);
    expect(readFileSync(inv, "utf8")).toBe(inventoryBefore);

    const dry = await dryRun(rig, ["failover", "-i", inv, "--old-primary-is-down"], ["pg2", "pg3"]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toMatch(/^Candidates:\n {4}HOST +TL +RECEIVED +REPLAYED +BEHIND THE BEST +PRIORITY\n {2}→ pg2 +1 +\S+ +\S+ +0 B +1 +chosen: received the most WAL\n {4}pg3 +1 +\S+ +\S+ +[\d.]+ MB +1 +behind by [\d.]+ MB\n/);
    expect(dry.stdout).toMatch(/^Fail over to pg2 in cluster rig \(dry run\):/m);
    expect(await Promise.all(["pg2", "pg3"].map(state))).toEqual(before);

    // The hosts that answer are watched for the replication password while the roles change.
    const password = readFileSync(inv.replace(/\.yml$/, ".state/replication-password"), "utf8").trim();
    const watch = await rig.watchForSecrets(["pg2", "pg3"], [password]);
    const r = await pgrep(["failover", "-i", inv, "--old-primary-is-down"]);
    expect(await watch.stop()).toEqual([]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/→ pg2 .*chosen: received the most WAL/);
    expect(primary()).toBe("pg2");
    expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg2\s+2\s/);
    await followsOn("pg3", 2);
    await rig.waitReplayed("pg2", "pg3");
    expect(await count("pg2")).toBe(String(expected));
    expect(await count("pg3")).toBe(String(expected));
  });

  it("the primary declared down thaws, still writable: status says split brain (exit 8), the next setup fences it, rejoin brings it back", async () => {
    spawnSync("docker", ["unpause", rig.host("pg1").container.getId()]);
    expect(await rig.psql("pg1", "SELECT pg_is_in_recovery()")).toBe("f");
    const st = await pgrep(["status", "-i", inv]);
    expect(st.exitCode, st.all).toBe(8);
    expect(st.stdout).toMatch(/^SPLIT BRAIN: pg1 accepts writes, but the inventory's primary is pg2/);
    expect(st.stdout).toMatch(/!\s+pg1\s+standby\s+split brain/);
    const json = JSON.parse((await pgrep(["status", "-i", inv, "--json"])).stdout) as { splitBrain: string[]; hosts: { name: string; state: string }[] };
    expect(json.splitBrain).toEqual(["pg1"]);
    expect(json.hosts.find((h) => h.name === "pg1")!.state).toBe("split brain");

    const setup = await pgrep(["setup", "-i", inv]);
    expect(setup.exitCode, setup.all).toBe(5);
    expect(setup.stderr).toMatch(/^\[pg1\] split brain: it accepts writes, and so does pg2, the inventory's primary: stopping it and marking it for pgrep rejoin pg1/m);
    expect(setup.stdout).toMatch(/!\s+pg1\s+standby\s+needs rejoin/);
    expect(await rig.sh("pg1", `pg_lsclusters -h | awk '{print $4}'; ls ${DATA}.pgrep-rejoin`)).toMatch(/^down.*\n.*pgrep-rejoin/);

    const j = await pgrep(["rejoin", "pg1", "-i", inv]);
    expect(j.exitCode, j.all).toBe(0);
    expect(j.stdout).toMatch(/pg1\s+standby\s+streaming\s+pg2/);
    await rig.waitReplayed("pg2", "pg1");
    expect(await count("pg1")).toBe(String(expected));
  });

  it("PostgreSQL alone crashed while both standbys were held behind: failover salvages what it wrote from its pg_wal, no row is lost, it follows without a rewind", async () => {
    const old = primary();
    const [a, b] = standbys() as [string, string];
    await rig.holdReceiver(a);
    await rig.holdReceiver(b);
    await commitRows(old);
    await rig.sh(old, "pg_ctlcluster 15 main stop -m immediate");
    await rig.releaseReceiver(a);
    await rig.releaseReceiver(b);
    // Thawed, each receiver reads what its socket holds and then finds its upstream gone: that is over
    // before the dry run looks, or the dry run would see the server end it, and positions still moving.
    for (const s of [a, b]) await rig.waitFor(`${s}'s receiver to see ${old} gone`, async () => (await rig.psql(s, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")) === "0");

    const dry = await dryRun(rig, ["failover", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^ {4}${old} +\\S+ +[\\d.]+ MB ahead +old primary +stopped; wrote [\\d.]+ MB no standby received$`, "m"));
    expect(dry.stdout).toMatch(/\] copy the [\d.]+ MB of WAL \w+ wrote after \S+ \(up to \S+\) from its pg_wal, restart on it and replay it/);

    const r = await pgrep(["failover", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    const now = primary();
    expect(now).not.toBe(old);
    expect(r.stderr).toMatch(new RegExp(`\\[${now}\\] ✓ salvaged: it has replayed ${old}'s WAL up to \\S+, so nothing ${old} wrote is lost`));
    expect(await count(now)).toBe(String(expected));
    // It held nothing the new primary lacks: it follows at once, without a rewind or a marker.
    expect(r.stdout).toMatch(new RegExp(`${old}\\s+standby\\s+streaming\\s+${now}`));
    expect(await rig.sh(old, `test -e ${DATA}.pgrep-rejoin && echo marked || echo clear`)).toBe("clear\n");
    for (const s of standbys()) {
      await rig.waitReplayed(now, s);
      expect(await count(s)).toBe(String(expected));
    }
  });

  it("--force onto the standby that was behind: the other is shown diverged (never a negative lag), wait does not count it, rejoin rewinds it", async () => {
    const old = primary();
    const [behind, ahead] = standbys() as [string, string];
    await rig.holdReceiver(behind);
    await commitRows(old);
    await rig.waitReplayed(old, ahead);
    spawnSync("docker", ["pause", rig.host(old).container.getId()]);
    try {
      await rig.releaseReceiver(behind);
      const r = await pgrep(["promote", behind, "-i", inv, "--old-primary-is-down", "--force"]);
      expect(r.exitCode, r.all).toBe(5);
      expect(r.stderr).toMatch(new RegExp(`WARNING \\(--force\\): ${ahead} has received [\\d.]+ MB \\(\\d+ bytes\\) more WAL than ${behind}; ${ahead} will need pgrep rejoin`));
      expect(r.stderr).toMatch(new RegExp(`hint: .*pgrep rejoin ${ahead} brings ${ahead} back`));
      const st = await pgrep(["status", "-i", inv]);
      expect(st.stdout).toMatch(new RegExp(`!\\s+${ahead}\\s+standby\\s+diverged\\s+${behind}\\s+\\d+\\s+\\S+\\s+0 B`));
      expect(st.stdout).toMatch(new RegExp(`${ahead}: it replayed [\\d.]+ MB of timeline \\d+ past \\S+, where ${behind}'s timeline \\d+ began: it cannot follow; needs pgrep rejoin ${ahead}`));
      const json = JSON.parse((await pgrep(["status", "-i", inv, "--json"])).stdout) as { hosts: { name: string; state: string; lagBytes: number | null }[] };
      expect(json.hosts.find((h) => h.name === ahead)).toMatchObject({ state: "diverged" });
      for (const h of json.hosts) expect(h.lagBytes ?? 0).toBeGreaterThanOrEqual(0);
      const w = await pgrep(["wait", ahead, "-i", inv, "--timeout", "2"]);
      expect(w.exitCode, w.all).toBe(5);
      expect(w.stderr).toMatch(new RegExp(`${ahead}: it replayed`));
      const j = await pgrep(["rejoin", ahead, "-i", inv]);
      expect(j.exitCode, j.all).toBe(5); // the frozen old primary is not in line yet
      expect(j.stderr).toMatch(new RegExp(`\\[${ahead}\\] ✓ rewound`));
      expect(j.stdout).toMatch(new RegExp(`${ahead}\\s+standby\\s+streaming\\s+${behind}`));
      await followsOn(ahead, await timelineOf(behind));
    } finally {
      spawnSync("docker", ["unpause", rig.host(old).container.getId()]);
    }
    // The frozen old primary thaws writable; the rejoin fences and rewinds it.
    const back = await pgrep(["rejoin", old, "-i", inv]);
    expect(back.exitCode, back.all).toBe(0);
    expect(back.stderr).toMatch(new RegExp(`\\[${old}\\] split brain`));
    const st = await pgrep(["status", "-i", inv]);
    expect(st.exitCode, st.all).toBe(0);
  });

  it("a promotion that does not finish is withdrawn: no promote request or trigger file is left, and the standby stays one", async () => {
    const old = primary();
    const [target] = standbys() as [string];
    await rig.waitReplayed(old, target);
    // The primary stops cleanly (its standbys get its shutdown checkpoint); the target's startup process freezes.
    await rig.sh(old, "pg_ctlcluster 15 main stop");
    await rig.waitFor(`${target} to replay ${old}'s shutdown checkpoint`, async () => {
      const ckpt = (await rig.sh(old, `/usr/lib/postgresql/15/bin/pg_controldata ${DATA} | sed -n 's/^Latest checkpoint location: *//p'`)).trim();
      return (await rig.psql(target, `SELECT pg_last_wal_replay_lsn() > '${ckpt}'`)) === "t";
    });
    await rig.sh(target, "kill -STOP $(pgrep -f '[s]tartup recovering')");
    try {
      const r = await pgrep(["promote", target, "-i", inv, "--promote-timeout", "3"]);
      expect(r.exitCode, r.all).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^pgrep: promoting ${target} failed: .*; the promote request was withdrawn and ${target} is still a standby: nothing was promoted`, "m"));
      expect(await rig.sh(target, `ls ${DATA}/promote ${DATA}/pgrep.promote 2>&1 | grep -c 'No such file'`)).toBe("2\n");
    } finally {
      await rig.sh(target, "kill -CONT $(pgrep -f '[s]tartup recovering')");
    }
    // The old primary comes back as it was; the target replays its new WAL and is still a standby.
    await rig.sh(old, "pg_ctlcluster 15 main start");
    await rig.psql(old, "INSERT INTO acked VALUES (0, 'after the withdrawn promotion')");
    expected += 1;
    await rig.waitReplayed(old, target);
    expect(await rig.psql(target, "SELECT pg_is_in_recovery()")).toBe("t");
    expect(primary()).toBe(old);
  });

  it("two commands logging in as different users (root, a sudo user, PostgreSQL's own user) exclude each other", async () => {
    // Less data to copy from here on: the next copies are cut short on purpose, then made again.
    await rig.psql(primary(), "TRUNCATE acked; INSERT INTO acked SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
    expected = 1000;
    const slow = rig.inventory({ primary: primary(), file: "slow.yml", extraTop: "clone: { max_rate: 1M }" });
    cpSync(inv.replace(/\.yml$/, ".state"), slow.replace(/\.yml$/, ".state"), { recursive: true });
    const [wiped] = standbys() as [string];
    await rig.sh(wiped, `pg_ctlcluster 15 main stop -m fast; rm -rf ${DATA}/*`);
    const first = execa("node", [CLI, "setup", "-i", slow], { reject: false, env: { NO_COLOR: "1" } });
    try {
      await rig.waitFor("the copy to run", async () => (await rig.sh(wiped, "pgrep -x pg_basebackup >/dev/null && echo y || echo n")).trim() === "y");
      for (const user of ["postgres", "deploy"]) {
        const file = rig.inventory({ primary: primary(), file: `as-${user}.yml`, sshUsers: { pg1: user, pg2: user, pg3: user } });
        cpSync(inv.replace(/\.yml$/, ".state"), file.replace(/\.yml$/, ".state"), { recursive: true });
        const second = await pgrep(["setup", "-i", file]);
        expect(second.exitCode, `${user}: ${second.all}`).toBe(6);
        expect(second.stderr).toMatch(/^pgrep: cluster rig is locked by another command: pgrep setup -i \S+slow\.yml/m);
      }
    } finally {
      first.kill("SIGKILL");
      await first;
    }
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
  });

  it("packets dropped after the command connected: nothing pgrep started on that host runs ~10 s later", async () => {
    const slow = rig.inventory({ primary: primary(), file: "slower.yml", extraTop: "clone: { max_rate: 1M }" });
    cpSync(inv.replace(/\.yml$/, ".state"), slow.replace(/\.yml$/, ".state"), { recursive: true });
    const [cut] = standbys() as [string];
    await rig.sh(cut, `pg_ctlcluster 15 main stop -m fast; rm -rf ${DATA}/*`);
    const run = execa("node", [CLI, "setup", "-i", slow], { reject: false, env: { NO_COLOR: "1" } });
    // Everything of pgrep's: the copy, SQL sessions, the wrapper, the heartbeat, the lock's holder.
    const mine = () => rig.sh(cut, "ps -eo args | grep -E '(^|/)(pg_basebackup|psql) |pgrep-tether|pgrep-heartbeat|\\.pgrep/locks/' | grep -v -F 'grep -E' || true");
    let restore: (() => Promise<void>) | undefined;
    try {
      await rig.waitFor("the copy to run", async () => (await rig.sh(cut, "pgrep -x pg_basebackup >/dev/null && echo y || echo n")).trim() === "y");
      expect((await mine()).trim()).not.toBe("");
      restore = await rig.netDown(cut);
      const cutAt = Date.now();
      // 8 s without a heartbeat, a second of the watchdog's look, up to 3 s of TERM before KILL.
      await rig.waitFor("pgrep's processes on the host to end", async () => (await mine()).trim() === "", 16_000);
      console.log(`pgrep's processes ended ${Date.now() - cutAt} ms after the host's packets stopped`);
    } finally {
      await restore?.();
      run.kill("SIGKILL");
      await run;
    }
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
    await rig.waitReplayed(primary(), cut);
    expect(await count(cut)).toBe(String(expected));
  });

  it("a primary declared down past its first promotion thaws writable: the next promotion fences it before promoting", async () => {
    // A switchover first: the primary then runs on a timeline past 1 (its reads carry a history file).
    const sw = await pgrep(["switchover", standbys()[0]!, "-i", inv]);
    expect(sw.exitCode, sw.all).toBe(0);
    const old = primary();
    const [a, b] = standbys() as [string, string];
    expect(await timelineOf(old)).toBeGreaterThan(1);
    spawnSync("docker", ["pause", rig.host(old).container.getId()]);
    try {
      const f = await pgrep(["promote", a, "-i", inv, "--old-primary-is-down"]);
      expect(f.exitCode, f.all).toBe(0);
    } finally {
      spawnSync("docker", ["unpause", rig.host(old).container.getId()]);
    }
    expect(await rig.psql(old, "SELECT pg_is_in_recovery()")).toBe("f");
    const r = await pgrep(["promote", b, "-i", inv, "--fence"]);
    expect([0, 5], r.all).toContain(r.exitCode);
    const fenced = r.stderr.indexOf(`[${old}] split brain: it accepts writes`);
    expect(fenced, r.all).toBeGreaterThanOrEqual(0);
    expect(fenced, r.all).toBeLessThan(r.stderr.indexOf(`[${b}] ✓ promoted`));
    expect(await rig.sh(old, "pg_lsclusters -h | awk '{print $4}'")).toMatch(/^down/);
    const j = await pgrep(["rejoin", old, "-i", inv]);
    expect(j.exitCode, j.all).toBe(0);
    await rig.waitReplayed(b, old);
  });
});
