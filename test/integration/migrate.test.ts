import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execa } from "execa";
import { CLI, pgrep } from "../cli.js";
import { inDb as inDbOf, migrationInventory, writeAppPassword } from "../rig/migration.js";
import { Rig, UPGRADE_IMAGE } from "../rig/rig.js";

// pgrep migrate on real hosts: a PostgreSQL 13 cluster (o1, o2) moved onto other hosts at 15 (n1, n2) by
// logical replication, with a writer that connects as applications do: a libpq list of both primaries
// with target_session_attrs=read-write, so it follows whichever takes writes. In order: refusal, start,
// a cut-over refused on a difference, the cut-over, the rollback.

let rig: Rig;
let oldInv: string;
let newInv: string;

const app = (h: string, sql: string) => rig.sh(h, `PGPASSWORD="$(cat /tmp/app.password)" psql -XAtq "postgresql://app@${h}/appdb" -c "${sql}"`);
const inDb = (h: string, sql: string) => inDbOf(rig, h, sql);
/** SQL as postgres past the read-only default pgrep sets on a side that must not take writes (a separate statement first). */
const behindItsBack = (h: string, sql: string) => rig.sh(h, `printf '%s\\n' 'SET default_transaction_read_only = off;' "${sql};" | runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d appdb`);
/** Every row of items, counted and hashed in key order. */
const rows = (h: string) => inDb(h, "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM items t");

/** Inserts through the two-primary list until stopped: the ids acknowledged, and the longest gap between two. */
function writer() {
  const acked: number[] = [];
  const errors: string[] = [];
  let go = true;
  let last = Date.now();
  let longest = 0;
  const done = (async () => {
    while (go) {
      try {
        const id = await rig.sh("o2", `PGPASSWORD="$(cat /tmp/app.password)" psql -XAtq "postgresql://app@o1,n1/appdb?target_session_attrs=read-write&connect_timeout=2" -c "INSERT INTO acks (at) VALUES (now()) RETURNING id"`);
        acked.push(Number(id.trim()));
        longest = Math.max(longest, Date.now() - last);
        last = Date.now();
      } catch (e) {
        // Refused while neither takes writes (read-only, or both tried): tried again. Anything else is kept.
        const m = (e as Error).message;
        if (!/read-only transaction|terminating connection|server closed the connection|could not make a writable connection|session is read-only/.test(m)) errors.push(m);
      }
    }
  })();
  return { acked, stop: async () => ((go = false), await done, { acked, longest, errors }) };
}

describe("pgrep migrate: PostgreSQL 13 onto other hosts at 15, by logical replication", () => {
  beforeAll(async () => {
    rig = await Rig.start(["o1", "o2", "n1", "n2"], [], {}, [], UPGRADE_IMAGE);
    await writeAppPassword(rig);
    oldInv = migrationInventory(rig, "old", 13, [["o1", "primary"], ["o2", "standby"]]);
    newInv = migrationInventory(rig, "new", 15, [["n1", "primary"], ["n2", "standby"]]);
    const r = await pgrep(["setup", "-i", oldInv]);
    expect(r.exitCode, r.all).toBe(0);
    await rig.sh(
      "o1",
      `runuser -u postgres -- psql -XAtq -d appdb -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, payload jsonb);
INSERT INTO items (name, payload) SELECT 'item ' || i, jsonb_build_object('n', i) FROM generate_series(1, 120000) i;
CREATE TABLE acks (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
CREATE TABLE words (w text COLLATE "C", lang text, n int, PRIMARY KEY (lang, w));
INSERT INTO words SELECT md5(i::text), 'en', i FROM generate_series(1, 3000) i;
ALTER TABLE items OWNER TO app; ALTER TABLE acks OWNER TO app; ALTER TABLE words OWNER TO app;
CREATE TABLE nokey (x int);
SQL
runuser -u postgres -- psql -XAtq -c "CREATE ROLE reporting LOGIN PASSWORD 'seen on both'"`,
    );
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("refuses a table logical replication could not carry, with nothing changed; the dry run shows the steps", async () => {
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv]);
    expect(r.exitCode, r.all).toBe(4);
    expect(r.stdout).toMatch(/appdb: "public"\."nokey" has no primary key/);
    expect(await rig.sh("n1", "ls /var/lib/postgresql/15/main 2>/dev/null | wc -l")).toBe("0\n");
    await inDb("o1", "DROP TABLE nokey");
    const dry = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--dry-run"]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toMatch(/\[n1\] subscribe each database to o1; 3 table\(s\) copied/);
    expect(await rig.sh("n1", "ls /var/lib/postgresql/15/main 2>/dev/null | wc -l")).toBe("0\n");
  });

  it("start: the new cluster set up, roles and schema copied, every table copied and kept up to date; writes refused there", async () => {
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/appdb: 3\/3 tables copied/);
    expect(r.stdout).toMatch(/n2\s+standby\s+streaming\s+n1/);
    expect(await rows("n1")).toBe(await rows("o1"));
    await app("o1", "INSERT INTO items (name) VALUES ('after the copy')");
    await rig.waitFor("the row on n1 and n2", async () => (await inDb("n2", "SELECT count(*) FROM items WHERE name = 'after the copy'")) === "1");
    await expect(app("n1", "INSERT INTO items (name) VALUES ('too early')")).rejects.toThrow(/read-only transaction/);
    // A role made by hand on the old cluster is on the new one, with its password (as stored: the same verifier).
    const verifier = (h: string) => rig.psql(h, "SELECT rolpassword FROM pg_authid WHERE rolname = 'reporting'");
    expect(await verifier("n1")).toMatch(/^SCRAM-SHA-256\$/);
    expect(await verifier("n1")).toBe(await verifier("o1"));
    const again = await pgrep(["migrate", "-i", oldInv, "--to", newInv]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).toMatch(/appdb: 3\/3 tables copied, \d+ bytes behind/);
    // status of either cluster shows the migration, read from its primary.
    const sn = await pgrep(["status", "-i", newInv]);
    expect(sn.exitCode, sn.all).toBe(0);
    expect(sn.stdout).toMatch(/writes refused here until the cut-over/);
    expect(sn.stdout).toMatch(/Migration \(pgrep migrate\) on the primary:\n(.*\n)*  appdb: subscribed, 3\/3 tables copied, last message [\d.]+ s ago/);
    const so = await pgrep(["status", "-i", oldInv]);
    expect(so.exitCode, so.all).toBe(0);
    expect(so.stdout).toMatch(/publishes through pgrep_migrate_forward_\d+: the subscriber is \d+ bytes behind/);
    // The pg_hba block of the migration is outside pgrep's own: setup of the old cluster keeps it.
    expect(so.stdout).not.toMatch(/pg_hba\.conf differs/);
    expect(again.stderr).not.toMatch(/set up cluster new/);
  });

  it("a cut-over that finds a row differing is refused: the old primary takes writes again, nothing else changes", async () => {
    await behindItsBack("n1", "UPDATE items SET name = 'changed behind its back' WHERE id = 70000");
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--cutover"]);
    expect(r.exitCode, r.all).toBe(4);
    expect(r.stderr).toMatch(/appdb: "public"\."items": the rows with id from 50000 to 99999 differ/);
    expect(r.stderr).toMatch(/o1 takes writes again/);
    await app("o1", "INSERT INTO acks (at) VALUES (now())");
    // The way back it prepared is gone again; the new side still replicates from the old one.
    expect(await inDb("o1", "SELECT count(*) FROM pg_subscription")).toBe("0");
    expect(await rig.psql("n1", "SELECT count(*) FROM pg_replication_slots")).toBe("1");
    expect(await inDb("n1", "SELECT string_agg(subenabled::text, ',') FROM pg_subscription")).toBe("true,true");
    await behindItsBack("n1", "UPDATE items SET name = 'item 70000' WHERE id = 70000");
  });

  it("the cut-over under a steady writer: every acknowledged row on the new primary, the sequence goes on, the old one follows it", async () => {
    const w = writer();
    await rig.waitFor("the writer on o1", async () => w.acked.length >= 20, 60_000);
    // A first cut-over killed (SIGKILL) inside its pause, once its forward subscriptions are disabled
    // (o1 refuses writes, n1 does not take them yet, or has just begun to): the next one redoes or finishes it.
    const killed = execa("node", [CLI, "migrate", "-i", oldInv, "--to", newInv, "--cutover", "--debug"], { reject: false, env: { NO_COLOR: "1" } });
    let said = "";
    killed.stderr?.on("data", (d: Buffer) => (said += d.toString()));
    await rig.waitFor("the cut-over's pause", async () => /migrate: forward subscriptions disabled/.test(said), 60_000);
    killed.kill("SIGKILL");
    await killed;
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--cutover", "--wait-lock", "30"]);
    expect(r.exitCode, r.all).toBe(0);
    console.log(`after the killed cut-over: ${/an earlier cut-over stopped.*|takes writes again: an earlier.*/.exec(r.stderr)?.[0] ?? r.stdout.split("\n")[0]}`);
    expect(r.stdout).toMatch(/Cut over: n1 \(new\) takes writes; o1 is read-only and replicates from it|cut over already; n1 takes the writes and o1 replicates from it/);
    const at = w.acked.length;
    await rig.waitFor("the writer on n1", async () => w.acked.length >= at + 20, 60_000);
    const { acked, longest, errors } = await w.stop();
    // A sequence not carried over would hand out ids the old side used: duplicate keys.
    expect(errors).toEqual([]);
    console.log(`cut-over: ${acked.length} acknowledged inserts, longest pause ${longest} ms; ${/Writes were refused for [\d.]+ s/.exec(r.stdout)?.[0]}`);
    const on = async (h: string) => new Set((await inDb(h, "SELECT string_agg(id::text, ',') FROM acks")).split(",").map(Number));
    const n1 = await on("n1");
    expect(acked.filter((id) => !n1.has(id))).toEqual([]);
    expect(new Set(acked).size).toBe(acked.length);
    await expect(app("o1", "INSERT INTO acks (at) VALUES (now())")).rejects.toThrow(/read-only transaction/);
    await rig.waitFor("o1 to have n1's rows", async () => (await inDb("o1", "SELECT count(*) FROM acks")) === (await inDb("n1", "SELECT count(*) FROM acks")));
    const again = await pgrep(["migrate", "-i", oldInv, "--to", newInv]);
    expect(again.stdout).toMatch(/cut over already/);
  });

  it("the rollback under the writer: back to the old primary with everything written on the new one", async () => {
    // First, a pause that stopped between two databases (pgrep killed): both sides refuse writes and one
    // database's way back is not enabled yet. The next migrate command finishes it before anything else.
    await rig.sh("n1", `runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM SET default_transaction_read_only = on" -c "SELECT pg_reload_conf()"`);
    await rig.sh("o1", `printf '%s\\n' 'SET default_transaction_read_only = off;' 'ALTER SUBSCRIPTION pgrep_migrate DISABLE;' | runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d postgres`);
    const resumed = await pgrep(["migrate", "-i", oldInv, "--to", newInv]);
    expect(resumed.exitCode, resumed.all).toBe(0);
    expect(resumed.stderr).toMatch(/\[n1\] takes writes again: an earlier cut-over or rollback stopped inside its pause/);
    expect(await rig.psql("o1", "SELECT string_agg(subenabled::text, ',') FROM pg_subscription")).toBe("true,true");
    await app("n1", "INSERT INTO acks (at) VALUES (now())");
    const w = writer();
    await rig.waitFor("the writer on n1", async () => w.acked.length >= 10, 60_000);
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--rollback"]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/Rolled back: o1 \(old\) takes writes again/);
    const at = w.acked.length;
    await rig.waitFor("the writer on o1", async () => w.acked.length >= at + 10, 60_000);
    const { acked, longest, errors } = await w.stop();
    expect(errors).toEqual([]);
    console.log(`rollback: longest pause ${longest} ms`);
    const o1 = new Set((await inDb("o1", "SELECT string_agg(id::text, ',') FROM acks")).split(",").map(Number));
    expect(acked.filter((id) => !o1.has(id))).toEqual([]);
    await expect(app("n1", "INSERT INTO acks (at) VALUES (now())")).rejects.toThrow(/read-only transaction/);
    // Nothing of the migration is left on the old primary.
    expect(await rig.psql("o1", "SELECT count(*) FROM pg_replication_slots")).toBe("1");
    expect(await rig.psql("o1", "SELECT count(*) FROM pg_roles WHERE rolname = 'pgrep_migrate'")).toBe("0");
    expect(await rig.sh("o1", "grep -c 'pgrep migration' /etc/postgresql/13/main/pg_hba.conf || true")).toBe("0\n");
    const s = await pgrep(["setup", "-i", oldInv, "--dry-run"]);
    expect(s.stdout).toMatch(/^Nothing to change/);
  });

  it("a second migration onto the new hosts made empty again: cut over, then --finish leaves nothing of it on either side", async () => {
    for (const h of ["n1", "n2"]) await rig.sh(h, "pg_dropcluster 15 main --stop");
    const start = await pgrep(["migrate", "-i", oldInv, "--to", newInv]);
    expect(start.exitCode, start.all).toBe(0);
    // --check after: the pause ends before the check, which reads snapshots both sides took in it. A row
    // changed behind pgrep's back is still found, said once the new primary takes writes.
    await behindItsBack("n1", "UPDATE items SET name = 'changed again' WHERE id = 3");
    const c = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--cutover", "--check", "after"]);
    expect(c.exitCode, c.all).toBe(4);
    expect(c.stdout).toMatch(/^Cut over: n1 \(new\) takes writes/m);
    expect(c.stderr).toMatch(/the two sides differ \(as both were at the hand-over\):\n  appdb: "public"\."items": the rows with id from -49999 to 49999 differ\nthe cut-over is done: n1 takes writes/);
    await app("n1", "INSERT INTO acks (at) VALUES (now())");
    await behindItsBack("n1", "UPDATE items SET name = 'item 3' WHERE id = 3");
    const f = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--finish"]);
    expect(f.exitCode, f.all).toBe(0);
    expect(f.stdout).toMatch(/Finished: new is the cluster; o1 no longer replicates and stays read-only/);
    for (const [h, major] of [["o1", 13], ["n1", 15]] as const) {
      expect(await rig.psql(h, "SELECT count(*) FROM pg_roles WHERE rolname = 'pgrep_migrate'"), h).toBe("0");
      expect(await inDb(h, "SELECT (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_publication)"), h).toBe("0");
      expect(await rig.psql(h, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgrep_migrate%'"), h).toBe("0");
      expect(await rig.sh(h, `grep -c 'pgrep migration' /etc/postgresql/${major}/main/pg_hba.conf || true`), h).toBe("0\n");
      expect(await rig.sh(h, "grep -c pgrep_migrate /var/lib/postgresql/.pgpass || true"), h).toBe("0\n");
    }
    await app("n1", "INSERT INTO acks (at) VALUES (now())");
    await expect(app("o1", "INSERT INTO acks (at) VALUES (now())")).rejects.toThrow(/read-only transaction/);
    const after = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--rollback"]);
    expect(after.exitCode, after.all).toBe(4);
  });
});
