import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, pgrep } from "../cli.js";
import { dryRun } from "../rig/dry-run.js";
import { Rig } from "../rig/rig.js";
import { waitUntil } from "../rig/wait.js";

// Hosts that fail the way real ones do, and an operator's pgrep that is killed or started twice, on three
// real hosts (PostgreSQL 15, Debian layout). The tests follow each other: each says which host is the
// primary when it starts (the inventory records it).

let rig: Rig;
let inv: string;
const DATA = "/var/lib/postgresql/15/main";
// Taken as the PostgreSQL OS user, in its home, whoever logs in.
const LOCK = "/var/lib/postgresql/.pgrep/locks/_var_lib_postgresql_15_main.lock";
const hosts = () => rig.hosts.map((h) => h.name).filter((h) => !gone.has(h));
const gone = new Set<string>();

const roleOf = (name: string) => new RegExp(`- name: ${name}\\n(?:    .*\\n)*?    role: (\\w+)`).exec(readFileSync(inv, "utf8"))?.[1];
const primary = () => hosts().find((h) => roleOf(h) === "primary")!;

/** What pgrep may have started on a host and must not outlive it: copies, SQL sessions, its wrapper and lock. */
const leftovers = (h: string) => rig.sh(h, "ps -eo args | grep -E '(^|/)(pg_basebackup|rsync|psql) |^ssh -i|pgrep-tether|pgrep-heartbeat|\.pgrep/locks/|pgrep-clone' | grep -v -F 'grep -E' || true");

async function noneLeftWithin(ms: number): Promise<void> {
  let left: string[] = [];
  await waitUntil(`nothing of pgrep's to run on any host`, async () => {
    left = (await Promise.all(hosts().map(async (h) => `${h}: ${(await leftovers(h)).trim()}`))).filter((l) => !/: $/.test(l));
    return !left.length;
  }, ms).catch(() => {
    throw new Error(`still running ${ms} ms after pgrep died:\n${left.join("\n")}`);
  });
}

/**
 * No base backup or backup session is left on the primary: its walsender ends once it finds its client
 * gone (the standby's processes are, already), which takes the server a moment, not a timeout.
 */
async function noBackupOn(p: string): Promise<void> {
  const q = "SELECT (SELECT count(*) FROM pg_stat_replication WHERE application_name LIKE 'pgrep_clone%' OR state = 'backup') + (SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup')";
  await waitUntil(`no backup left on ${p}`, async () => (await rig.psql(p, q)) === "0", 10_000);
}

/** A role change is complete when the next setup has nothing to do and no slot is left that nothing streams through. */
async function convergedCompletely(file = inv): Promise<string> {
  const dry = await dryRun(rig, ["setup", "-i", file], hosts());
  expect(dry.exitCode, dry.all).toBe(0);
  expect(dry.stdout, dry.all).toMatch(/^Nothing to change: cluster rig already matches the inventory/);
  for (const h of hosts()) {
    if ((await rig.sh(h, `test -e ${DATA}/PG_VERSION && pg_lsclusters -h | awk '{print $4}'`).catch(() => "")).startsWith("online"))
      expect(`${h}: ${await rig.psql(h, "SELECT coalesce(string_agg(slot_name, ','), '') FROM pg_replication_slots WHERE NOT active")}`).toBe(`${h}: `);
  }
  return dry.stdout;
}

/** The lock is held on the host itself: an flock on the file there fails while pgrep runs. */
// As PostgreSQL's OS user, as pgrep takes it (a lock file made by root here would shut pgrep out); a
// conflict (exit 99) is "held", anything else an error, not "held".
const lockedOn = async (h: string) => (await rig.sh(h, `runuser -u postgres -- flock -n -E 99 ${LOCK} true 2>&1; case $? in 0) echo free;; 99) echo held;; *) echo error;; esac`)).trim().split("\n").pop();

const waitFor = waitUntil;

async function wipe(h: string): Promise<void> {
  await rig.sh(h, `pg_ctlcluster 15 main stop -m fast 2>/dev/null; rm -rf ${DATA}/* ${DATA}.pgrep-copy; true`);
}

/** A setup started in the background, throttled, that is copying to `h` with `tool` when this returns (wrapped: a subprocess is awaitable). */
async function copyRunning(file: string, h: string, tool: string) {
  const run = execa("node", [CLI, "setup", "-i", file], { reject: false, env: { NO_COLOR: "1" } });
  await waitFor(`${tool} on ${h}`, async () => (await rig.sh(h, `pgrep -x ${tool} >/dev/null && echo y || echo n`)).trim() === "y");
  return { run };
}

describe("failover under real faults", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2", "pg3"]);
    inv = rig.inventory({ primary: "pg1" });
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    await rig.psql("pg1", "CREATE TABLE t (id int PRIMARY KEY, src text); CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 20) AS pad FROM generate_series(1, 40000) g");
  });
  afterAll(async () => {
    for (const h of rig?.hosts ?? []) spawnSync("docker", ["unpause", h.container.getId()]);
    await rig?.stop();
  });

  it("two setups started together: one copies, the other exits 6 naming the holder; the lock lives on the hosts", async () => {
    await wipe("pg3");
    const slow = rig.inventory({ primary: "pg1", file: "slow.yml", extraTop: "clone: { max_rate: 4M }" });
    spawnSync("cp", ["-r", inv.replace(/\.yml$/, ".state"), slow.replace(/\.yml$/, ".state")]);
    const first = execa("node", [CLI, "setup", "-i", slow], { reject: false, env: { NO_COLOR: "1" } });
    await waitFor("the first setup to hold the lock on every host", async () => (await Promise.all(["pg1", "pg2", "pg3"].map(lockedOn))).every((x) => x === "held"));
    const second = await pgrep(["setup", "-i", inv]);
    expect(second.exitCode, second.all).toBe(6);
    expect(second.stderr).toMatch(/^pgrep: cluster rig is locked by another command: pgrep setup -i \S+slow\.yml \(pid \d+, user \w+ on \S+, since \d{4}-\d\d-\d\dT[\d:]+Z\)/m);
    expect(second.stderr).toMatch(/hint: wait for it to finish, or pass --wait-lock SECONDS/);
    // Held on every host, not on this machine.
    expect(await Promise.all(["pg1", "pg2", "pg3"].map(lockedOn))).toEqual(["held", "held", "held"]);
    const waited = await pgrep(["setup", "-i", inv, "--wait-lock", "120"]);
    const r = await first;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(waited.exitCode, waited.all).toBe(0);
    expect(waited.stderr).toMatch(/Waiting for the cluster lock: held by pgrep setup/);
    expect(waited.stderr).toMatch(/Nothing to change/);
    expect(await Promise.all(["pg1", "pg2", "pg3"].map(lockedOn))).toEqual(["free", "free", "free"]);
    expect(waited.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
  });

  for (const method of ["basebackup", "rsync"] as const) {
    it(`pgrep killed with SIGKILL during a ${method} copy: nothing it started runs on any host 5 s later, and the next setup converges`, async () => {
      const file = rig.inventory({ primary: "pg1", file: `kill-${method}.yml`, extraTop: `clone: { method: ${method}, max_rate: 1M }` });
      spawnSync("cp", ["-r", inv.replace(/\.yml$/, ".state"), file.replace(/\.yml$/, ".state")]);
      await wipe("pg3");
      const { run } = await copyRunning(file, "pg3", method === "basebackup" ? "pg_basebackup" : "rsync");
      expect((await leftovers("pg3")).trim()).not.toBe("");
      run.kill("SIGKILL");
      await run;
      await noneLeftWithin(5_000);
      await noBackupOn("pg1");
      expect(await Promise.all(["pg1", "pg2", "pg3"].map(lockedOn))).toEqual(["free", "free", "free"]);
      const again = await pgrep(["setup", "-i", inv]);
      expect(again.exitCode, again.all).toBe(0);
      expect(again.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
      await rig.waitReplayed("pg1", "pg3");
      expect(await rig.psql("pg3", "SELECT count(*) FROM filler")).toBe("40000");
    });
  }

  it("pgrep killed after a copy, before the standby's first start: the copy is not trusted and is made again", async () => {
    // The copy is not synced to disk until the server's first start does it; until then the marker stays.
    await wipe("pg3");
    let seen = "";
    const run = execa("node", [CLI, "setup", "-i", inv], { reject: false, env: { NO_COLOR: "1" } });
    run.stderr?.on("data", (d: Buffer) => {
      seen += d.toString();
      if (/\[pg3\] ✓ cloned pg1/.test(seen)) run.kill("SIGKILL");
    });
    await run;
    expect(seen).toMatch(/\[pg3\] ✓ cloned pg1/);
    expect(seen).not.toMatch(/\[pg3\] ✓ start PostgreSQL/);
    expect(await rig.sh("pg3", `test -e ${DATA}.pgrep-copy && echo marked || echo unmarked`)).toBe("marked\n");
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stderr).toMatch(/\[pg3\] clone from pg1 with pg_basebackup, .* — a copy pgrep started here did not finish/);
    expect(again.stderr).toMatch(/\[pg3\] remove \/var\/lib\/postgresql\/15\/main\.pgrep-copy — the copy is on disk: the server synced it when it started/);
    expect(await rig.sh("pg3", `test -e ${DATA}.pgrep-copy && echo marked || echo unmarked`)).toBe("unmarked\n");
    await rig.waitReplayed("pg1", "pg3");
    expect(await rig.psql("pg3", "SELECT count(*) FROM filler")).toBe("40000");
  });

  it("two promotes started together: exactly one promotes, the other exits 6; the role change is complete", async () => {
    const [a, b] = await Promise.all([pgrep(["promote", "pg2", "-i", inv, "--fence"]), pgrep(["promote", "pg3", "-i", inv, "--fence"])]);
    expect([a.exitCode, b.exitCode].sort(), `${a.all}\n${b.all}`).toEqual([0, 6]);
    const won = a.exitCode === 0 ? "pg2" : "pg3";
    expect(primary()).toBe(won);
    expect(await rig.psql(won, "SELECT pg_is_in_recovery()")).toBe("f");
    const lost = won === "pg2" ? "pg3" : "pg2";
    expect(await rig.psql(lost, "SELECT pg_is_in_recovery()")).toBe("t");
    // The fenced old primary follows at once: nothing is left for a later setup.
    const st = await pgrep(["status", "-i", inv]);
    expect(st.exitCode, st.all).toBe(0);
    expect(st.stdout).toMatch(new RegExp(`pg1\\s+standby\\s+streaming\\s+${won}`));
    await convergedCompletely();
  });

  it("switchover leaves nothing for the next setup: no slot on the demoted host", async () => {
    const r = await pgrep(["switchover", "pg1", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(primary()).toBe("pg1");
    await convergedCompletely();
  });

  it("a frozen primary (packets dropped): failover dials each host once, re-points the survivor, then rejoins it", async () => {
    // Both standbys hold all of pg1's WAL when it freezes: this test is about a host that freezes, not
    // about a target with less WAL than the other standby (which then cannot follow it).
    const caughtUp = await pgrep(["wait", "-i", inv, "--max-lag-bytes", "0", "--timeout", "30"]);
    expect(caughtUp.exitCode, caughtUp.all).toBe(0);
    const p1 = rig.host("pg1").container.getId();
    spawnSync("docker", ["pause", p1]);
    try {
      const r = await pgrep(["promote", "pg2", "-i", inv, "--old-primary-is-down", "--debug"]);
      console.log(`promote with a frozen primary took ${r.ms} ms`);
      expect(r.exitCode, r.all).toBe(0);
      // One dial per host for the whole command, the frozen one included, bounded by the connect timeout.
      for (const h of ["pg1", "pg2", "pg3"]) expect(r.stderr.match(new RegExp(`^debug: \\S+ ${h}: dialling`, "gm")) ?? [], h).toHaveLength(1);
      expect(r.stderr).toMatch(/^debug: \S+ pg1: not connected after \d+ ms: pg1: SSH connection to .* timed out after 3 s/m);
      // pg3's name was looked up on pg2 after the promotion, so the converge needed no second read of every host.
      expect(r.stderr).toMatch(/^debug: \S+ converge: planned from the hosts as read/m);
      expect(await rig.psql("pg2", "SELECT pg_is_in_recovery()")).toBe("f");
      expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg2/);
      const dry = await dryRun(rig, ["setup", "-i", inv], ["pg2", "pg3"]);
      expect(dry.exitCode, dry.all).toBe(0);
      expect(dry.stdout).toMatch(/^Nothing to change: .*\(except what is listed below\)\.\nLeft as they are:\n  pg1: left as it is: unreachable: SSH connection to .* timed out/);
      const setup = await pgrep(["setup", "-i", inv]);
      expect(setup.exitCode, setup.all).toBe(5);
      expect(setup.stdout).toMatch(/\?\s+pg1\s+standby\s+unreachable/);
      expect(setup.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg2/);
    } finally {
      spawnSync("docker", ["unpause", p1]);
    }
    // It thaws as the primary it was: a second primary, which rejoin rewinds and makes follow.
    expect(await rig.psql("pg1", "SELECT pg_is_in_recovery()")).toBe("f");
    const j = await pgrep(["rejoin", "pg1", "-i", inv]);
    expect(j.exitCode, j.all).toBe(0);
    expect(j.stdout).toMatch(/pg1\s+standby\s+streaming\s+pg2/);
    await convergedCompletely();
  });

  it("a primary whose PostgreSQL alone crashed (host up): promote salvages what it wrote from its pg_wal, and it follows without a rewind", async () => {
    // pg2 is the primary. Rows reach it while its standbys are stopped; then its server crashes. The table
    // is not vacuumed by itself and nothing reads it on pg2: its WAL ends with the commit, nothing after it.
    await rig.psql("pg2", "ALTER TABLE t SET (autovacuum_enabled = false)");
    await rig.waitReplayed("pg2", "pg1");
    await rig.waitReplayed("pg2", "pg3");
    await rig.sh("pg1", "pg_ctlcluster 15 main stop");
    await rig.sh("pg3", "pg_ctlcluster 15 main stop");
    await rig.psql("pg2", "INSERT INTO t VALUES (3, 'salvaged')");
    await rig.sh("pg2", "pg_ctlcluster 15 main stop -m immediate");
    await rig.sh("pg1", "pg_ctlcluster 15 main start");
    await rig.sh("pg3", "pg_ctlcluster 15 main start");
    const r = await pgrep(["promote", "pg3", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg3\] copy the [\d.]+ (B|kB) of WAL pg2 wrote after \S+ \(up to \S+\) from its pg_wal, restart on it and replay it/);
    expect(r.stderr).toMatch(/\[pg3\] ✓ salvaged: it has replayed pg2's WAL up to \S+, so nothing pg2 wrote is lost/);
    expect(await rig.psql("pg3", "SELECT count(*) FROM t WHERE src = 'salvaged'")).toBe("1");
    // It holds nothing pg3 lacks: it follows at once, no rewind and no marker.
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg3/);
    expect(r.stdout).toMatch(/pg1\s+standby\s+streaming\s+pg3/);
    expect(await rig.sh("pg2", `test -e ${DATA}.pgrep-rejoin && echo marked || echo clear`)).toBe("clear\n");
    await rig.waitReplayed("pg3", "pg2");
    expect(await rig.psql("pg2", "SELECT count(*) FROM t WHERE src = 'salvaged'")).toBe("1");
    await convergedCompletely();
  });

  it("a vanished primary (its name no longer resolves): the survivors follow the new primary in the same command", async () => {
    // pg3 is the primary. Its container goes, and with it its name on the network.
    await rig.psql("pg3", "INSERT INTO t VALUES (1, 'before')");
    await rig.waitReplayed("pg3", "pg2");
    await rig.waitReplayed("pg3", "pg1");
    await rig.host("pg3").container.stop({ remove: true });
    gone.add("pg3");
    expect(await rig.sh("pg1", "getent hosts pg3 || echo unresolvable")).toBe("unresolvable\n");
    const r = await pgrep(["promote", "pg1", "-i", inv, "--old-primary-is-down", "--debug"]);
    console.log(`promote with a vanished primary took ${r.ms} ms`);
    expect(r.exitCode, r.all).toBe(0);
    // Its name is not looked up; pg_hba.conf keeps the address it had, and says so.
    expect(r.stderr).toMatch(/pg3: pg_hba\.conf keeps its last known address (\d+\.\d+\.\d+\.\d+\/32(, )?)+ \(its name is not looked up while it is down\)/);
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
    await rig.psql("pg1", "INSERT INTO t VALUES (2, 'after')");
    await rig.waitReplayed("pg1", "pg2");
    expect(await rig.psql("pg2", "SELECT string_agg(src, ',' ORDER BY id) FROM t")).toBe("before,after,salvaged");
    // Setup converges the others and says which host it could not reach.
    const setup = await pgrep(["setup", "-i", inv]);
    expect(setup.exitCode, setup.all).toBe(5);
    expect(setup.stderr).toMatch(/pg3: left as it is: unreachable/);
    expect(setup.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
    const text = await convergedCompletely();
    expect(text).toMatch(/pg3: left as it is: unreachable/);
  });
});
