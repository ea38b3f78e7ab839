import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { Rig, UPGRADE_IMAGE } from "../rig/rig.js";

// pgrep upgrade on real hosts: bookworm with bullseye's PostgreSQL 13 beside 15 (test/rig/Dockerfile.upgrade).
// A primary and two standbys on 13 go to 15 in place. The tests run in order: the refusals first, each
// leaving the 13 cluster as it was, then the upgrade itself.

let rig: Rig;
let inv: string;
const ALL = ["pg1", "pg2", "pg3"];

/** Every user table's rows, hashed in key order, and the sequence's next value: what an upgrade must keep. */
const contents = (h: string) =>
  rig.psql(h, `SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM items t) || ' ' || (SELECT md5(string_agg(w::text, ',' ORDER BY id)) FROM words w) || ' ' || (SELECT last_value FROM items_id_seq)`);
/** What a refused upgrade could have made: the new major's directories on any host. */
const newDirs = async () => (await Promise.all(ALL.map((h) => rig.sh(h, "ls -d /var/lib/postgresql/15/main /etc/postgresql/15/main 2>/dev/null; true")))).join("").trim();
const streaming = (h: string) => rig.psql(h, "SELECT string_agg(application_name || ':' || state, ',' ORDER BY application_name) FROM pg_stat_replication");

describe("pgrep upgrade: PostgreSQL 13 to 15 in place", () => {
  beforeAll(async () => {
    rig = await Rig.start(ALL, [], {}, [], UPGRADE_IMAGE);
    inv = rig.inventory({ primary: "pg1", major: 13 });
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    await rig.psql(
      "pg1",
      `CREATE EXTENSION pg_trgm;
       CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, payload jsonb);
       INSERT INTO items (name, payload) SELECT 'item ' || i, jsonb_build_object('n', i, 'tags', array['a', 'b']) FROM generate_series(1, 50000) i;
       CREATE INDEX items_trgm ON items USING gin (name gin_trgm_ops);
       CREATE TABLE words (id int PRIMARY KEY, w text COLLATE "C");
       INSERT INTO words SELECT i, md5(i::text) FROM generate_series(1, 20000) i;`,
    );
    await rig.waitReplayed("pg1", "pg3");
    await rig.waitReplayed("pg1", "pg2");
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("--check names a library the new major lacks on one standby, and changes nothing", async () => {
    await rig.sh("pg3", "mv /usr/lib/postgresql/15/lib/pg_trgm.so /root/pg_trgm.so");
    try {
      const r = await pgrep(["upgrade", "-i", inv, "--major", "15", "--check"]);
      expect(r.exitCode, r.all).toBe(4);
      expect(r.stdout).toMatch(/pg3: PostgreSQL 15 has no pg_trgm library here/);
      expect(r.stdout).not.toMatch(/pg[12]: PostgreSQL 15 has no/);
      expect(await newDirs()).toBe("");
    } finally {
      await rig.sh("pg3", "mv /root/pg_trgm.so /usr/lib/postgresql/15/lib/pg_trgm.so");
    }
    const ok = await pgrep(["upgrade", "-i", inv, "--major", "15", "--check"]);
    expect(ok.exitCode, ok.all).toBe(0);
    expect(ok.stdout).toMatch(/every check passed/);
    const dry = await pgrep(["upgrade", "-i", inv, "--major", "15", "--dry-run"]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toMatch(/pg_upgrade --link from \/var\/lib\/postgresql\/13\/main/);
    expect(await newDirs()).toBe("");
    expect(readFileSync(inv, "utf8")).toMatch(/major: 13/);
  });

  it("a standby that has not replayed the primary's last checkpoint: refused, and the 13 cluster runs again as it was", async () => {
    const before = await contents("pg1");
    // A standby whose replay is held (a delayed standby): it receives the shutdown checkpoint but does not replay it.
    await rig.psql("pg3", "SELECT pg_wal_replay_pause()");
    const r = await pgrep(["upgrade", "-i", inv, "--major", "15", "--stream-timeout", "3"]);
    expect(r.exitCode, r.all).toBe(4);
    expect(r.stderr).toMatch(/the standbys' latest checkpoint must be pg1's \([0-9A-F/]+\), and pg3 at [0-9A-F/]+ is not/);
    expect(await newDirs()).toBe("");
    expect(readFileSync(inv, "utf8")).toMatch(/major: 13/);
    const s = await pgrep(["status", "-i", inv]);
    expect(s.exitCode, s.all).toBe(0);
    expect(await contents("pg1")).toBe(before);
    await rig.waitReplayed("pg1", "pg3");
  });

  it("a standby that cannot be stopped while the upgrade stops the cluster: every host runs again, nothing changed", async () => {
    const before = await contents("pg1");
    // pg2's pg_ctlcluster refuses to stop it (the fault) once the primary has stopped.
    await rig.sh("pg2", `mv /usr/bin/pg_ctlcluster /usr/bin/pg_ctlcluster.real && printf '#!/bin/sh\\n[ "$3" = stop ] && { echo "stop refused (injected fault)" >&2; exit 1; }\\nexec /usr/bin/pg_ctlcluster.real "$@"\\n' > /usr/bin/pg_ctlcluster && chmod 755 /usr/bin/pg_ctlcluster`);
    try {
      const r = await pgrep(["upgrade", "-i", inv, "--major", "15"]);
      expect(r.exitCode, r.all).toBe(1);
      expect(r.stderr).toMatch(/stop refused \(injected fault\)/);
      expect(r.stderr).toMatch(/every host was started again as it was; nothing else changed/);
    } finally {
      await rig.sh("pg2", "mv /usr/bin/pg_ctlcluster.real /usr/bin/pg_ctlcluster");
    }
    expect(await newDirs()).toBe("");
    // pg2 kept running; it streams again once its receiver retries against the restarted primary.
    const w = await pgrep(["wait", "-i", inv, "--timeout", "60"]);
    expect(w.exitCode, w.all).toBe(0);
    const s = await pgrep(["status", "-i", inv]);
    expect(s.exitCode, s.all).toBe(0);
    expect(await contents("pg1")).toBe(before);
  });

  it("a failure after pg_upgrade ran: the 13 cluster is put back on every host and runs, every row there", async () => {
    const before = await contents("pg1");
    // pg3's copy cannot make its new data directory (a file stands where its parent goes): it fails
    // after pg1's pg_upgrade --link has renamed pg1's pg_control.
    await rig.sh("pg3", "touch /var/lib/postgresql/15");
    try {
      const r = await pgrep(["upgrade", "-i", inv, "--major", "15"]);
      expect(r.exitCode, r.all).toBe(1);
      expect(r.stderr).toMatch(/✓ pg_upgrade --link/);
      expect(r.stderr).toMatch(/rolled back: pg1: global\/pg_control.old renamed back; .* PostgreSQL 13 runs again on every host/);
    } finally {
      await rig.sh("pg3", "rm -f /var/lib/postgresql/15");
    }
    expect(await newDirs()).toBe("");
    expect(readFileSync(inv, "utf8")).toMatch(/major: 13/);
    const s = await pgrep(["status", "-i", inv]);
    expect(s.exitCode, s.all).toBe(0);
    for (const h of ALL) expect(await rig.psql(h, "SHOW server_version_num")).toMatch(/^13/);
    await rig.psql("pg1", "INSERT INTO items (name) VALUES ('after the rollback'); DELETE FROM items WHERE name = 'after the rollback'; SELECT setval('items_id_seq', 50000)");
    await rig.waitReplayed("pg1", "pg3");
    for (const h of ALL) expect(await contents(h)).toBe(before);
  });

  it("upgrades every host to 15: every row kept, the standbys linked rather than copied, streaming, setup has nothing to do", async () => {
    const before = await contents("pg1");
    const r = await pgrep(["upgrade", "-i", inv, "--major", "15"]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/Upgraded cluster rig from PostgreSQL 13 to 15; writes were refused for [\d.]+ s/);
    expect(readFileSync(inv, "utf8")).toMatch(/major: 15/);
    for (const h of ALL) expect(await rig.psql(h, "SHOW server_version_num")).toMatch(/^15/);
    expect(await streaming("pg1")).toBe("pg2:streaming,pg3:streaming");
    await rig.psql("pg1", "INSERT INTO items (name) VALUES ('after the upgrade')");
    await rig.waitReplayed("pg1", "pg2");
    await rig.waitReplayed("pg1", "pg3");
    for (const h of ALL) expect(await rig.psql(h, "SELECT count(*) FROM items WHERE name LIKE '%the upgrade%'")).toBe("1");
    await rig.psql("pg1", "DELETE FROM items WHERE name = 'after the upgrade'; SELECT setval('items_id_seq', 50000)");
    await rig.waitReplayed("pg1", "pg3");
    for (const h of ALL) expect(await contents(h)).toBe(before);
    // The trigram index answers on a standby (the extension came along, its library is there).
    expect((await rig.psql("pg3", "SET enable_seqscan = off; SELECT count(*) FROM items WHERE name LIKE '%item 4999%'")).split("\n").at(-1)).toBe("11");
    // A standby's big table file is one file with two names: its 13 cluster's and its 15 cluster's.
    const file = await rig.psql("pg1", "SELECT pg_relation_filepath('items')");
    expect((await rig.sh("pg2", `stat -c %h /var/lib/postgresql/15/main/${file}`)).trim()).toBe("2");
    expect((await rig.sh("pg2", "cat /etc/postgresql/13/main/start.conf")).trim()).toBe("manual");
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stderr).toMatch(/Nothing to change/);
  });
});
