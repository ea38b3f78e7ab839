import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { dryRun } from "../rig/dry-run.js";
import { Rig } from "../rig/rig.js";

// A pair built by hand the way the classic hot-standby guides do it — a Debian primary with its own
// replication role, pg_hba rules and settings, and a standby made with `pg_basebackup -R` — taken over
// by pgrep setup without a re-clone.

let rig: Rig;
let inv: string;
const HBA = "/etc/postgresql/15/main/pg_hba.conf";
const DATA = "/var/lib/postgresql/15/main";

describe("adopting a cluster built by hand", () => {
  beforeAll(async () => {
    rig = await Rig.start(["h1", "h2"]);
    await rig.sh(
      "h1",
      [
        "pg_createcluster 15 main >/dev/null",
        `echo "listen_addresses = '*'" >> /etc/postgresql/15/main/postgresql.conf`,
        `echo "work_mem = '8MB'   # set by hand" >> /etc/postgresql/15/main/postgresql.conf`,
        `echo "host replication repl_hand all scram-sha-256   # the guide's rule" >> ${HBA}`,
        `echo "host all all 10.99.0.0/16 scram-sha-256   # an application's rule" >> ${HBA}`,
        "pg_ctlcluster 15 main start",
        `runuser -u postgres -- psql -qXc "CREATE ROLE repl_hand REPLICATION LOGIN PASSWORD 'by-hand'" -c "CREATE TABLE before_pgrep (x int)" -c "INSERT INTO before_pgrep VALUES (42)"`,
      ].join(" && "),
    );
    await rig.sh(
      "h2",
      [
        "pg_createcluster 15 main >/dev/null",
        `rm -rf ${DATA}/*`,
        // As the guides do it: -R writes the connection settings (the password too), -C -S makes a slot.
        `PGPASSWORD=by-hand runuser -u postgres -- pg_basebackup -h h1 -U repl_hand -D ${DATA} -R -C -S guide_slot -X stream -c fast`,
        `touch ${DATA}/made-by-hand`,
        "pg_ctlcluster 15 main start",
      ].join(" && "),
    );
    await rig.waitFor("the hand-made standby to stream", async () => (await rig.psql("h1", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) === "1");
    inv = rig.inventory({ primary: "h1" });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("refuses when pg_basebackup -R's settings point at a host the inventory does not name as the upstream, and changes nothing", async () => {
    await rig.sh("h2", `sed -i 's/ host=h1 / host=10.255.0.1 /' ${DATA}/postgresql.auto.conf`);
    try {
      const before = await Promise.all(["h1", "h2"].map((h) => rig.fingerprint(h, `${DATA}/postgresql.auto.conf`)));
      for (const args of [["--dry-run"], []]) {
        const r = await pgrep(["setup", "-i", inv, ...args]);
        expect(r.exitCode, r.all).toBe(4);
        expect(r.stderr).toMatch(/h2: postgresql\.auto\.conf sets primary_conninfo, primary_slot_name over pgrep's settings, pointing at 10\.255\.0\.1 port 5432, not at h1 .* pass --reset-auto-conf/);
        expect(r.all).not.toContain("by-hand");
      }
      expect(await Promise.all(["h1", "h2"].map((h) => rig.fingerprint(h, `${DATA}/postgresql.auto.conf`)))).toEqual(before);
    } finally {
      await rig.sh("h2", `sed -i 's/ host=10.255.0.1 / host=h1 /' ${DATA}/postgresql.auto.conf`);
    }
  });

  it("takes over pg_basebackup -R's settings that point at the upstream, without a flag: the diff first, no copy, the guide's slot dropped, the hand-made rules and settings kept", async () => {
    const dry = await dryRun(rig, ["setup", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(7);
    expect(dry.stdout).toMatch(/\[h2\] reset primary_conninfo, primary_slot_name in postgresql\.auto\.conf — postgresql\.auto\.conf sets primary_conninfo, primary_slot_name over pgrep's settings: they point at h1, the upstream the inventory names/);
    expect(dry.stdout).toMatch(/^ +-primary_conninfo = 'user=repl_hand password=\(hidden\) .*host=h1 /m);
    expect(dry.stdout).toMatch(/^ +-primary_slot_name = 'guide_slot'/m);
    expect(dry.stdout).toMatch(/\[h1\] drop the replication slot guide_slot on h1 — h2 streamed through it before pgrep took it over; pgrep_h2 keeps its WAL now/);
    expect(dry.all).not.toContain("by-hand");
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).not.toContain("by-hand");
    expect(r.stderr).not.toMatch(/clone from/);
    expect(r.stderr).toMatch(/\[h2\] ✓ reset primary_conninfo, primary_slot_name: pgrep's settings apply/);
    expect(r.stderr).toMatch(/\[h[12]\] ✓ dropped the slot guide_slot/);
    expect(r.stderr).toMatch(/\[h1\] ✓ restarted for wal_log_hints/);
    expect(await rig.sh("h2", `ls ${DATA}/made-by-hand`)).toMatch(/made-by-hand/); // the same data directory
    expect(await rig.psql("h2", "SELECT x FROM before_pgrep")).toBe("42");
    // It streams as the inventory says: under its name, through its slot.
    expect(await rig.psql("h1", "SELECT application_name || ':' || state FROM pg_stat_replication")).toBe("h2:streaming");
    expect(await rig.psql("h1", "SELECT slot_name || ':' || active FROM pg_replication_slots")).toBe("pgrep_h2:true");
    expect(await rig.sh("h2", `grep -c -e primary_conninfo -e primary_slot_name ${DATA}/postgresql.auto.conf || true`)).toBe("0\n");
    // What the guide's author set up stays: the rules, the role, the setting.
    expect(await rig.sh("h1", `grep -c -e "# the guide's rule" -e "# an application's rule" ${HBA}`)).toBe("2\n");
    expect(await rig.psql("h1", "SELECT count(*) FROM pg_roles WHERE rolname = 'repl_hand'")).toBe("1");
    expect(await rig.psql("h1", "SHOW work_mem")).toBe("8MB");
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.stderr).toMatch(/Nothing to change/);
    expect((await pgrep(["status", "-i", inv])).exitCode).toBe(0);
  });
});
