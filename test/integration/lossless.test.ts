import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { Rig } from "../rig/rig.js";
import { replicationPassword, withoutSecrets } from "../rig/watch.js";

// What pgrep promises about data, on three real hosts (PostgreSQL 15, Debian layout): copies made under
// writes are exact, role changes lose no acknowledged commit even when the new primary lags on purpose,
// a failed promotion leaves one primary, and synchronous replication never stops the new primary's
// commits. The tests run in order and build on each other (each says which host is the primary).

let rig: Rig;
let inv: string;

// Data and schema as pg_dump writes them, less its random \restrict key (15.14+) and the version lines.
const DUMP = "runuser -u postgres -- pg_dump -d postgres --no-sync | grep -v -e '^-- Dump' -e '^.restrict ' -e '^.unrestrict '";

let next = 1;

/** Rows acknowledged by whichever host is the primary, written from this process until stopped. */
function writer(hosts: string[]) {
  const acked: number[] = [];
  let go = true;
  const done = (async () => {
    while (go) {
      for (const h of hosts) {
        try {
          await rig.psql(h, `INSERT INTO acks VALUES (${next})`);
          acked.push(next++);
          break;
        } catch {
          /* a standby, or stopped: the other one */
        }
      }
    }
  })();
  return {
    acked,
    stop: async () => {
      go = false;
      await done;
      return acked;
    },
  };
}

/** Every row the writer saw acknowledged is on `host`. */
async function holdsEvery(host: string, acked: number[]): Promise<void> {
  const there = new Set((await rig.psql(host, "SELECT coalesce(string_agg(id::text, ','), '') FROM acks")).split(",").filter(Boolean).map(Number));
  expect(acked.filter((x) => !there.has(x))).toEqual([]);
}

const paused = (h: string) => rig.psql(h, "SELECT pg_is_wal_replay_paused()");

describe("copies and role changes that lose nothing", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2", "pg3"]);
    // pg3 is copied with the backup API and rsync, pg2 with pg_basebackup.
    inv = rig.inventory({ primary: "pg1" });
    writeFileSync(inv, readFileSync(inv, "utf8").replace(/(  - name: pg3\n(?:    .*\n)*?    role: standby\n)/, "$1    clone: { method: rsync }\n"));
    const alone = rig.inventory({ primary: "pg1", file: "alone.yml" });
    writeFileSync(alone, readFileSync(alone, "utf8").replace(/  - name: pg[23]\n(    .*\n)*/g, ""));
    const r = await pgrep(["setup", "-i", alone]);
    expect(r.exitCode, r.all).toBe(0);
    cpSync(alone.replace(/\.yml$/, ".state"), inv.replace(/\.yml$/, ".state"), { recursive: true });
    await rig.sh("pg1", "runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -i -q -s 4 postgres >/dev/null 2>&1");
    await rig.psql("pg1", "CREATE EXTENSION amcheck; CREATE TABLE acks (id int PRIMARY KEY)");
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("both clone methods under pgbench writes: dumps equal, amcheck finds nothing, checksums on and clean", async () => {
    expect(await rig.psql("pg1", "SHOW data_checksums")).toBe("on"); // new clusters get page checksums
    await rig.sh("pg1", "(runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -n -c 2 -T 600 -R 150 postgres >/tmp/pgbench.log 2>&1 &)");
    try {
      // Both clones, the rsync one with its temporary key and backup session, watched for the password.
      const r = await withoutSecrets(rig, ["pg1", "pg2", "pg3"], [replicationPassword(inv)], () => pgrep(["setup", "-i", inv]));
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/\[pg2\] ✓ cloned pg1 .* with basebackup/);
      expect(r.stderr).toMatch(/\[pg3\] ✓ cloned pg1 .* with rsync/);
    } finally {
      await rig.sh("pg1", "pkill -x pgbench; for i in $(seq 1 100); do pgrep -x pgbench >/dev/null || exit 0; sleep 0.1; done; exit 1");
    }
    expect(Number(await rig.psql("pg1", "SELECT count(*) FROM pgbench_history"))).toBeGreaterThan(0);
    const dump = await rig.sh("pg1", `${DUMP} | md5sum`);
    for (const s of ["pg2", "pg3"]) {
      await rig.waitReplayed("pg1", s);
      expect(await rig.sh(s, `${DUMP} | md5sum`), s).toBe(dump);
      expect(await rig.psql(s, "SHOW data_checksums")).toBe("on");
      const checked = await rig.psql(s, "SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace");
      expect(Number(checked)).toBeGreaterThanOrEqual(4);
      expect(await rig.psql(s, "SELECT sum(checksum_failures) FROM pg_stat_database")).toMatch(/^(0|)$/);
    }
  });

  it("switchover while the target's replay is paused and a writer runs: refused over the lag limit, then every acknowledged commit kept", async () => {
    await rig.psql("pg2", "SELECT pg_wal_replay_pause()");
    const w = writer(["pg1", "pg2"]);
    await rig.waitFor("the writer to get ahead of pg2's replay", async () => w.acked.length > 20);
    const refused = await pgrep(["switchover", "pg2", "-i", inv, "--max-lag-bytes", "1"]);
    expect(refused.exitCode, refused.all).toBe(4);
    expect(refused.stderr).toMatch(/pg2 is \d+ bytes behind pg1 \(limit 1\)/);
    expect(await paused("pg2")).toBe("t"); // refused: nothing was touched
    const r = await pgrep(["switchover", "pg2", "-i", inv, "--max-lag-bytes", "100000000"]);
    const acked = await w.stop();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg2\] its replay was paused: resumed/);
    expect(r.stderr).toMatch(/\[pg2\] has replayed pg1's shutdown checkpoint/);
    expect(await rig.psql("pg2", "SELECT pg_is_in_recovery()")).toBe("f");
    await holdsEvery("pg2", acked);
    expect(acked.length).toBeGreaterThan(20);
  });

  it("promote --fence while the target's replay is paused and a writer runs: every acknowledged commit kept", async () => {
    await rig.psql("pg3", "SELECT pg_wal_replay_pause()");
    const w = writer(["pg2", "pg3"]);
    await rig.waitFor("the writer to get ahead of pg3's replay", async () => w.acked.length > 20);
    const refused = await pgrep(["promote", "pg3", "-i", inv, "--fence", "--max-lag-bytes", "1"]);
    expect(refused.exitCode, refused.all).toBe(4);
    const r = await pgrep(["promote", "pg3", "-i", inv, "--fence", "--max-lag-bytes", "100000000"]);
    const acked = await w.stop();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg3\] its replay was paused: resumed/);
    await holdsEvery("pg3", acked);
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg3/);
  });

  it("a promotion that fails during a switchover: the old primary runs again, the target stays a standby, nothing recorded", async () => {
    // pg3 is the primary. pg1's pg_ctlcluster refuses to promote (the fault); the inventory promotes with it.
    const viaCtl = rig.inventory({ primary: "pg3", file: "pgctl.yml", extraTop: "promote: { method: pg_ctl }" });
    cpSync(inv.replace(/\.yml$/, ".state"), viaCtl.replace(/\.yml$/, ".state"), { recursive: true });
    await rig.sh("pg1", `mv /usr/bin/pg_ctlcluster /usr/bin/pg_ctlcluster.real && printf '#!/bin/sh\\n[ "$3" = promote ] && { echo "promotion refused (injected fault)" >&2; exit 1; }\\nexec /usr/bin/pg_ctlcluster.real "$@"\\n' > /usr/bin/pg_ctlcluster && chmod 755 /usr/bin/pg_ctlcluster`);
    const before = readFileSync(viaCtl, "utf8");
    try {
      const r = await pgrep(["switchover", "pg1", "-i", viaCtl]);
      expect(r.exitCode, r.all).toBe(1);
      expect(r.stderr).toMatch(/\[pg3\] promotion of pg1 failed: starting pg3 again as the primary/);
      expect(r.stderr).toMatch(/^pgrep: promoting pg1 failed: .*promotion refused \(injected fault\).*; pg3 is the primary again and pg1 a standby/m);
    } finally {
      await rig.sh("pg1", "mv /usr/bin/pg_ctlcluster.real /usr/bin/pg_ctlcluster");
    }
    expect(await rig.psql("pg3", "SELECT pg_is_in_recovery()")).toBe("f");
    expect(await rig.psql("pg1", "SELECT pg_is_in_recovery()")).toBe("t");
    expect(readFileSync(viaCtl, "utf8")).toBe(before);
    await rig.psql("pg3", "INSERT INTO acks VALUES (-1)");
    // The standbys reconnect to pg3 by themselves: the cluster is whole again.
    const st = await pgrep(["wait", "-i", inv, "--timeout", "30"]);
    expect(st.exitCode, st.all).toBe(0);
  });

  it("Debian's pg_ctlcluster promote (promote.method pg_ctl): a switchover there and back succeeds, and pg_ctlcluster is what promoted", async () => {
    // pg3 is the primary. A shim on both hosts records each pg_ctlcluster call, then runs the real one.
    const viaCtl = rig.inventory({ primary: "pg3", file: "pgctl-ok.yml", extraTop: "promote: { method: pg_ctl }" });
    cpSync(inv.replace(/\.yml$/, ".state"), viaCtl.replace(/\.yml$/, ".state"), { recursive: true });
    const shim = `mv /usr/bin/pg_ctlcluster /usr/bin/pg_ctlcluster.real && printf '#!/bin/sh\\necho "$*" >> /tmp/pg_ctlcluster.calls\\nexec /usr/bin/pg_ctlcluster.real "$@"\\n' > /usr/bin/pg_ctlcluster && chmod 755 /usr/bin/pg_ctlcluster && rm -f /tmp/pg_ctlcluster.calls && install -m 666 /dev/null /tmp/pg_ctlcluster.calls`;
    await Promise.all(["pg1", "pg3"].map((h) => rig.sh(h, shim)));
    try {
      const there = await pgrep(["switchover", "pg1", "-i", viaCtl]);
      expect(there.exitCode, there.all).toBe(0);
      const wasPrimary = await rig.psql("pg1", "SELECT NOT pg_is_in_recovery()");
      const back = await pgrep(["switchover", "pg3", "-i", viaCtl]);
      expect(back.exitCode, back.all).toBe(0);
      expect(wasPrimary).toBe("t");
      expect(there.all).toMatch(/\[pg1\] .*pg_ctl promote/);
      expect(await rig.psql("pg3", "SELECT pg_is_in_recovery()")).toBe("f");
      for (const h of ["pg1", "pg3"]) expect(await rig.sh(h, "cat /tmp/pg_ctlcluster.calls")).toMatch(/^15 main promote$/m);
    } finally {
      await Promise.all(["pg1", "pg3"].map((h) => rig.sh(h, "mv /usr/bin/pg_ctlcluster.real /usr/bin/pg_ctlcluster")));
    }
    const st = await pgrep(["wait", "-i", inv, "--timeout", "30"]);
    expect(st.exitCode, st.all).toBe(0);
  });

  it("synchronous standbys: pgrep's own statements do not wait for them, and a promotion never leaves the new primary waiting for itself", async () => {
    // pg3 is the primary; commits wait for pg1 (FIRST 1).
    const sync = rig.inventory({ primary: "pg3", file: "sync.yml", extraTop: "replication:\n  synchronous: [pg1]" });
    cpSync(inv.replace(/\.yml$/, ".state"), sync.replace(/\.yml$/, ".state"), { recursive: true });
    const r = await pgrep(["setup", "-i", sync]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await rig.psql("pg3", "SHOW synchronous_standby_names")).toBe('FIRST 1 ("pg1")');
    expect(r.stdout).toMatch(/pg1\s+standby\s+streaming\s.*\ssync\s/);
    // pg1 down and the role's password changed by hand: setup changes the role before it starts pg1 again.
    await rig.sh("pg1", "pg_ctlcluster 15 main stop");
    await rig.psql("pg3", "SET synchronous_commit = local; ALTER ROLE replicator PASSWORD 'changed-by-hand'");
    const fix = await pgrep(["setup", "-i", sync], {}, { timeoutMs: 60_000 });
    expect(fix.timedOut, "setup waited for a synchronous standby that was down").toBe(false);
    expect(fix.exitCode, fix.all).toBe(0);
    expect(fix.stderr).toMatch(/\[pg3\] create or update the replication role/);
    // pg1 is promoted: it must not wait for itself; pg3 follows it.
    const p = await pgrep(["promote", "pg1", "-i", sync, "--fence"]);
    expect(p.exitCode, p.all).toBe(0);
    expect(await rig.psql("pg1", "SHOW synchronous_standby_names")).toBe("");
    expect((await rig.sh("pg1", "timeout 10 runuser -u postgres -- psql -XAtc 'INSERT INTO acks VALUES (-2)' >/dev/null 2>&1; echo $?")).trim()).toBe("0");
  });
});
