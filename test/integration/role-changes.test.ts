import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { Rig } from "../rig/rig.js";

// promote, rejoin and switchover on three real hosts (PostgreSQL 15, Debian layout), through the CLI.
// The tests run in order and build on each other: each role change starts where the one before left the
// cluster (the inventory records who is primary).

let rig: Rig;
let inv: string;
let fenced: string; // the inventory the fence-command test promoted through (from then on the accurate one)

async function primaryIs(name: string): Promise<void> {
  expect(await rig.psql(name, "SELECT pg_is_in_recovery()")).toBe("f");
}

const roleOf = (name: string) => new RegExp(`- name: ${name}\\n(?:    .*\\n)*?    role: (\\w+)`).exec(readFileSync(inv, "utf8"))?.[1];

describe("role changes", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2", "pg3"]);
    inv = rig.inventory({ primary: "pg1" });
    writeFileSync(inv, `# Orders cluster: keep this comment.\n${readFileSync(inv, "utf8")}`);
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    await rig.psql("pg1", "CREATE TABLE t (id int PRIMARY KEY, src text)");
  });
  afterAll(async () => {
    await rig?.stop();
  });

  const fingerprint = (h: string) => rig.fingerprint(h, "/var/lib/postgresql/15/main/postgresql.auto.conf");
  const everything = async () => [readFileSync(inv, "utf8"), ...(await Promise.all(["pg1", "pg2", "pg3"].map(fingerprint)))];

  it("dry runs of promote and switchover show the steps and every file change, and change nothing", async () => {
    const before = await everything();
    // The fingerprint holds each server's start time and role, read as the postgres user.
    for (const [i, role] of [[1, "f"], [2, "t"], [3, "t"]] as const) expect(before[i]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\d [\\d:.]+\\+00\\|${role}$`, "m"));
    const p = await pgrep(["promote", "pg2", "-i", inv, "--fence", "--dry-run"]);
    expect(p.exitCode, p.all).toBe(0);
    expect(p.stdout).toMatch(/^Promote pg2 in cluster \w+ \(dry run\):/);
    expect(p.stdout).toMatch(/\[pg1\] stop PostgreSQL cleanly, then wait until pg2 has replayed its shutdown checkpoint — --fence/);
    // The slots of the hosts that will follow pg2 are made on it before it is promoted: they can follow at once.
    expect(p.stdout).toMatch(/\[pg2\] promote with pg_promote\(\), after replaying what it has received and making its standbys' slots pgrep_pg1, pgrep_pg3 —/);
    // The inventory's diff, and the re-pointed standby's diff, as the setup plan after the promotion would write them.
    expect(p.stdout).toMatch(/-    role: primary\n\s+\+    role: standby/);
    expect(p.stdout).toMatch(/\[pg3\] write \/etc\/postgresql\/15\/main\/conf\.d\/pgrep\.conf/);
    expect(p.stdout).toMatch(/-primary_conninfo = 'host=pg1 [^\n]*application_name=pg3'/);
    expect(p.stdout).toMatch(/\+primary_conninfo = 'host=pg2 [^\n]*application_name=pg3'/);
    expect(p.stdout).toMatch(/make pg1 a standby whatever it holds/);
    expect(p.stderr).toMatch(/Dry run: nothing was changed/);

    const w = await pgrep(["switchover", "pg3", "-i", inv, "--dry-run"]);
    expect(w.exitCode, w.all).toBe(0);
    expect(w.stdout).toMatch(/\[pg1\] stop PostgreSQL cleanly/);
    expect(w.stdout).toMatch(/\[pg3\] promote with pg_promote\(\)/);
    expect(w.stdout).toMatch(/\[pg1\] start PostgreSQL — the standby must run/);
    expect(w.stdout).toMatch(/\[pg2\] write /);

    // A dry run still refuses what the real run would refuse.
    const refused = await pgrep(["promote", "pg2", "-i", inv, "--dry-run"]);
    expect(refused.exitCode, refused.all).toBe(4);
    expect(await everything()).toEqual(before);
  });

  it("refuses to promote while the primary accepts writes, and changes nothing", async () => {
    const before = readFileSync(inv, "utf8");
    const r = await pgrep(["promote", "pg2", "-i", inv]);
    expect(r.exitCode, r.all).toBe(4);
    expect(r.stderr).toMatch(/pg1 is running and accepts writes; promoting pg2 now would make two primaries/);
    expect(r.stderr).toMatch(/hint: --fence/);
    await primaryIs("pg1");
    expect(await rig.psql("pg2", "SELECT pg_is_in_recovery()")).toBe("t");
    expect(readFileSync(inv, "utf8")).toBe(before);
  });

  it("promotes with --fence: nothing lost, the other standby follows, the inventory records it", async () => {
    await rig.psql("pg1", "INSERT INTO t SELECT g, 'pg1' FROM generate_series(1, 100) g");
    const r = await pgrep(["promote", "pg2", "-i", inv, "--fence"]);
    console.log(`promote --fence took ${r.ms} ms`);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg2\] ✓ promoted with pg_promote\(\): accepts writes on timeline 2/);
    await primaryIs("pg2");
    expect(await rig.psql("pg2", "SELECT count(*) FROM t")).toBe("100"); // everything pg1 acknowledged
    // Fenced cleanly, the old primary holds nothing pg2 lacks: it follows pg2 in the same command.
    expect(r.stdout).toMatch(/pg1\s+standby\s+streaming\s+pg2/);
    await rig.psql("pg2", "INSERT INTO t SELECT g, 'pg2' FROM generate_series(101, 150) g");
    await rig.waitReplayed("pg2", "pg3");
    await rig.waitReplayed("pg2", "pg1");
    expect(await rig.psql("pg3", "SELECT count(*) FROM t")).toBe("150");
    expect(await rig.psql("pg1", "SELECT count(*) FROM t")).toBe("150");
    expect(await rig.psql("pg2", "SELECT string_agg(application_name || '=' || state, ',' ORDER BY application_name) FROM pg_stat_replication")).toBe("pg1=streaming,pg3=streaming");
    const text = readFileSync(inv, "utf8");
    expect(text.startsWith("# Orders cluster: keep this comment.\n")).toBe(true);
    expect([roleOf("pg1"), roleOf("pg2"), roleOf("pg3")]).toEqual(["standby", "primary", "standby"]);
  });

  it("promoting the primary again is a no-op", async () => {
    const r = await pgrep(["promote", "pg2", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/pg2 already is the primary; nothing to do/);
  });

  it("a setup after the promotion has nothing to do", async () => {
    const started = await rig.psql("pg2", "SELECT pg_postmaster_start_time()");
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/Nothing to change/);
    expect(await rig.psql("pg2", "SELECT pg_postmaster_start_time()")).toBe(started);
    await primaryIs("pg2");
    expect(r.stdout).toMatch(/pg1\s+standby\s+streaming\s+pg2/);
  });

  it("switches over under a steady writer without losing an acknowledged commit", async () => {
    const acked: number[] = [];
    const ackTimes: number[] = [];
    let next = 1000;
    let stop = false;
    const writer = (async () => {
      while (!stop) {
        for (const host of ["pg2", "pg1"]) {
          try {
            await rig.psql(host, `INSERT INTO t VALUES (${next}, '${host}')`);
            acked.push(next);
            ackTimes.push(Date.now());
            next++;
            break;
          } catch {
            /* not the primary, or down: try the other */
          }
        }
      }
    })();
    // A reader on pg3, which the switchover only re-points: it must be served all along.
    const reads: { t: number; ok: boolean }[] = [];
    const reader = (async () => {
      while (!stop) reads.push({ t: Date.now(), ok: await rig.psql("pg3", "SELECT 1").then(() => true, () => false) });
    })();
    await rig.waitFor("the writer's first commits", async () => acked.length >= 10);
    // Every host is watched for the password while the roles change (stop, promote, re-point, .pgpass).
    const password = readFileSync(inv.replace(/\.yml$/, ".state/replication-password"), "utf8").trim();
    const watch = await rig.watchForSecrets(["pg1", "pg2", "pg3"], [password]);
    const r = await pgrep(["switchover", "pg1", "-i", inv]);
    expect(await watch.stop()).toEqual([]);
    const atSwitch = acked.length;
    await rig.waitFor("commits on the new primary", async () => acked.length >= atSwitch + 10);
    stop = true;
    await writer;
    await reader;
    expect(r.exitCode, r.all).toBe(0);
    await primaryIs("pg1");
    const pause = Math.max(...ackTimes.slice(1).map((t, i) => t - ackTimes[i]!));
    const served = reads.filter((x) => x.ok).map((x) => x.t);
    const readGap = Math.max(...served.slice(1).map((t, i) => t - served[i]!));
    console.log(`switchover: ${acked.length} acknowledged commits, longest write pause ${pause} ms, command ${r.ms} ms; ${served.length} reads on pg3, longest gap ${readGap} ms`);
    // The bound the README states for a switchover's write pause; pg3 served every read it was asked.
    expect(pause).toBeLessThan(5000);
    expect(reads.filter((x) => !x.ok)).toEqual([]);
    expect(served.length).toBeGreaterThan(5);
    const present = new Set((await rig.psql("pg1", `SELECT string_agg(id::text, ',') FROM t WHERE id >= 1000`)).split(",").map(Number));
    expect(acked.filter((x) => !present.has(x))).toEqual([]);
    expect(acked.length).toBeGreaterThan(5);
    await rig.waitReplayed("pg1", "pg2");
    await rig.waitReplayed("pg1", "pg3");
    expect(await rig.psql("pg2", "SELECT count(*) FROM t")).toBe(await rig.psql("pg1", "SELECT count(*) FROM t"));
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
    expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
  });

  it("after a crash: promote needs the acknowledgement, the old primary that comes back is a split brain: status says so, setup fences it, rejoin rewinds it", async () => {
    // Rows that reach no standby: the standbys are stopped while pg1 takes them, then pg1 crashes.
    await rig.sh("pg2", "pg_ctlcluster 15 main stop");
    await rig.sh("pg3", "pg_ctlcluster 15 main stop");
    await rig.psql("pg1", "INSERT INTO t SELECT g, 'lost' FROM generate_series(5001, 5010) g");
    await rig.sh("pg1", "pg_ctlcluster 15 main stop -m immediate");
    await rig.stopSshd("pg1");
    await rig.sh("pg2", "pg_ctlcluster 15 main start");
    await rig.sh("pg3", "pg_ctlcluster 15 main start");

    const refused = await pgrep(["promote", "pg2", "-i", inv]);
    expect(refused.exitCode, refused.all).toBe(4);
    expect(refused.stderr).toMatch(/pg1 cannot be reached .*which does not prove it is down/);
    expect(refused.stderr).toMatch(/--old-primary-is-down/);

    const r = await pgrep(["promote", "pg2", "-i", inv, "--old-primary-is-down"]);
    console.log(`promote --old-primary-is-down took ${r.ms} ms`);
    expect(r.exitCode, r.all).toBe(0);
    await primaryIs("pg2");
    expect(await rig.psql("pg2", "SELECT count(*) FROM t WHERE src = 'lost'")).toBe("0");
    await rig.psql("pg2", "INSERT INTO t SELECT g, 'new' FROM generate_series(6001, 6005) g");
    await rig.waitReplayed("pg2", "pg3");
    expect(await rig.psql("pg3", "SELECT count(*) FROM t WHERE id > 6000")).toBe("5");

    // The old primary comes back by itself, as a primary with its divergent rows: a split brain.
    await rig.startSshd("pg1");
    await rig.sh("pg1", "pg_ctlcluster 15 main start");
    expect(await rig.psql("pg1", "SELECT count(*) FROM t WHERE src = 'lost'")).toBe("10");
    const status = await pgrep(["status", "-i", inv]);
    expect(status.exitCode, status.all).toBe(8);
    expect(status.stdout).toMatch(/^SPLIT BRAIN: pg1 accepts writes, but the inventory's primary is pg2/);
    expect(status.stdout).toMatch(/!\s+pg1\s+standby\s+split brain/);
    // A dry run says what it would do and does nothing: pg1 still takes writes.
    const before = await everything();
    const dry = await pgrep(["rejoin", "pg1", "-i", inv, "--dry-run"]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stderr).toMatch(/\[pg1\] split brain: it accepts writes, and so does pg2, the inventory's primary: pgrep would stop it first and mark it for pgrep rejoin pg1/);
    expect(dry.stdout).toMatch(/\[pg1\] pg_rewind against pg2/);
    expect(dry.stdout).toMatch(/\+primary_conninfo = 'host=pg2 /);
    expect(await everything()).toEqual(before);
    expect(await rig.psql("pg1", "SELECT pg_is_in_recovery()")).toBe("f");
    // The next command that changes the cluster fences it first, says so, and goes on without it.
    const setup = await pgrep(["setup", "-i", inv]);
    expect(setup.exitCode, setup.all).toBe(5);
    expect(setup.stderr).toMatch(/\[pg1\] split brain: it accepts writes, and so does pg2, the inventory's primary: stopping it and marking it for pgrep rejoin pg1/);
    expect(setup.stderr).toMatch(/\[pg1\] ✓ fenced/);
    expect(setup.stdout).toMatch(/!\s+pg1\s+standby\s+needs rejoin/);
    expect(await rig.sh("pg1", "pg_lsclusters -h | awk '{print $4}'")).toMatch(/^down/);

    const j = await pgrep(["rejoin", "pg1", "-i", inv]);
    console.log(`rejoin took ${j.ms} ms`);
    expect(j.exitCode, j.all).toBe(0);
    expect(j.stderr).toMatch(/\[pg1\] ✓ rewound/);
    expect(await rig.psql("pg1", "SELECT pg_is_in_recovery()")).toBe("t");
    await rig.waitReplayed("pg2", "pg1");
    expect(await rig.psql("pg1", "SELECT count(*) FROM t WHERE src = 'lost'")).toBe("0");
    expect(await rig.psql("pg1", "SELECT count(*) FROM t WHERE id > 6000")).toBe("5");
    expect(j.stdout).toMatch(/pg1\s+standby\s+streaming\s+pg2/);
  });

  it("an unreachable primary can be fenced by the inventory's fence command instead of the acknowledgement", async () => {
    // pg2 is the primary now. Cut its SSH off; the fence command (run on this machine) stops its server.
    await rig.stopSshd("pg2");
    fenced = `${inv.replace(/\.yml$/, "")}-fenced.yml`;
    const marker = `${rig.dir}/fence-ran`;
    const id = rig.host("pg2").container.getId();
    writeFileSync(fenced, readFileSync(inv, "utf8").replace("\nhosts:", `\npromote:\n  fence_command: 'echo "$1 $2" > ${marker} && docker exec ${id} pg_ctlcluster 15 main stop -m immediate'\nhosts:`));
    const failing = `${inv.replace(/\.yml$/, "")}-badfence.yml`;
    writeFileSync(failing, readFileSync(inv, "utf8").replace("\nhosts:", "\npromote:\n  fence_command: 'echo no power switch >&2; exit 7'\nhosts:"));
    // The generated password lives beside the inventory; copies of the inventory get a copy of it.
    for (const f of [fenced, failing]) cpSync(inv.replace(/\.yml$/, ".state"), f.replace(/\.yml$/, ".state"), { recursive: true });
    try {
      const bad = await pgrep(["promote", "pg3", "-i", failing]);
      expect(bad.exitCode, bad.all).toBe(4);
      expect(bad.stderr).toMatch(/the fence command for pg2 failed \(exit 7\): no power switch; nothing was promoted/);
      expect(await rig.psql("pg3", "SELECT pg_is_in_recovery()")).toBe("t");

      const r = await pgrep(["promote", "pg3", "-i", fenced]);
      expect(r.exitCode, r.all).toBe(0);
      expect(readFileSync(marker, "utf8")).toBe("pg2 pg2\n");
      await primaryIs("pg3");
      await expect(rig.psql("pg2", "SELECT 1")).rejects.toThrow(); // fenced: its server is down
    } finally {
      await rig.startSshd("pg2");
    }
  });

  it("a standby that cannot be reached does not stop the others following, nor hide that the promotion happened; the cluster converges after", async () => {
    // pg3 is the primary now; pg1 streams from it; pg2 was cut off by the fence command. Promote pg1 while
    // pg2 cannot be reached: the promotion happens, and the error says so.
    await rig.stopSshd("pg2");
    try {
      const r = await pgrep(["promote", "pg1", "-i", fenced, "--fence"]);
      // Exit 5: the promotion happened (3 would say nothing changed); pg3 follows, pg2 is named.
      expect(r.exitCode, r.all).toBe(5);
      expect(r.stderr).toMatch(/^pgrep: pg1 is the primary, but not every host is in line: pg2 \(unreachable\)/m);
      expect(r.stderr).toMatch(/hint: once pg2 answers, run pgrep setup with the same inventory/);
      expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
      await primaryIs("pg1");
      expect(/- name: pg1\n(?:    .*\n)*?    role: (\w+)/.exec(readFileSync(fenced, "utf8"))?.[1]).toBe("primary");
    } finally {
      await rig.startSshd("pg2");
    }
    // pg2 was stopped hard while it was a primary: rejoin rewinds it; pg3 (fenced cleanly) simply follows.
    const j = await pgrep(["rejoin", "pg2", "-i", fenced]);
    expect(j.exitCode, j.all).toBe(0);
    const st = await pgrep(["status", "-i", fenced]);
    expect(st.exitCode, st.all).toBe(0);
    expect(st.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
    expect(st.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
  });
});
