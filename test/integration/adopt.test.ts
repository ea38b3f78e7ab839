import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
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
        `PGPASSWORD=by-hand runuser -u postgres -- pg_basebackup -h h1 -U repl_hand -D ${DATA} -R -X stream -c fast`,
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

  it("refuses while pg_basebackup -R's primary_conninfo would override pgrep's, saying how to go on, and changes nothing", async () => {
    const before = await Promise.all(["h1", "h2"].map((h) => rig.fingerprint(h, `${DATA}/postgresql.auto.conf`)));
    for (const args of [["--dry-run"], []]) {
      const r = await pgrep(["setup", "-i", inv, ...args]);
      expect(r.exitCode, r.all).toBe(4);
      expect(r.stderr).toMatch(/h2: postgresql\.auto\.conf sets primary_conninfo over pgrep's settings, so it would not stream as the inventory says .*pass --reset-auto-conf/);
    }
    expect(await Promise.all(["h1", "h2"].map((h) => rig.fingerprint(h, `${DATA}/postgresql.auto.conf`)))).toEqual(before);
  });

  it("with --reset-auto-conf: no copy, a restart only where a setting needs it (named), the hand-made rules and settings kept", async () => {
    const r = await pgrep(["setup", "-i", inv, "--reset-auto-conf"]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).not.toMatch(/clone from/);
    expect(r.stderr).toMatch(/\[h2\] ✓ reset primary_conninfo: pgrep's settings apply/);
    expect(r.stderr).toMatch(/\[h1\] ✓ restarted for wal_log_hints/);
    expect(await rig.sh("h2", `ls ${DATA}/made-by-hand`)).toMatch(/made-by-hand/); // the same data directory
    expect(await rig.psql("h2", "SELECT x FROM before_pgrep")).toBe("42");
    // It streams as the inventory says: under its name, through its slot.
    expect(await rig.psql("h1", "SELECT application_name || ':' || state FROM pg_stat_replication")).toBe("h2:streaming");
    expect(await rig.psql("h1", "SELECT slot_name || ':' || active FROM pg_replication_slots")).toBe("pgrep_h2:true");
    expect(await rig.sh("h2", `grep -c primary_conninfo ${DATA}/postgresql.auto.conf || true`)).toBe("0\n");
    // What the guide's author set up stays: the rules, the role, the setting.
    expect(await rig.sh("h1", `grep -c -e "# the guide's rule" -e "# an application's rule" ${HBA}`)).toBe("2\n");
    expect(await rig.psql("h1", "SELECT count(*) FROM pg_roles WHERE rolname = 'repl_hand'")).toBe("1");
    expect(await rig.psql("h1", "SHOW work_mem")).toBe("8MB");
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.stderr).toMatch(/Nothing to change/);
    expect((await pgrep(["status", "-i", inv])).exitCode).toBe(0);
  });
});
