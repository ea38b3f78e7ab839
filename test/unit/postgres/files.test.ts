import { describe, expect, it } from "vitest";
import { applyBlock, changedSettings, conninfo, ensureLine, mergePgpass, parseSettings, setSetting } from "../../../src/postgres/files.js";

const B = "# BEGIN x";
const E = "# END x";

describe("pg_hba managed block", () => {
  const hba = "# comment header\n#\n\nlocal all postgres peer\nhost all all 0.0.0.0/0 scram-sha-256\n";
  it("goes before the first rule so it matches first, and replacing it is idempotent", () => {
    const once = applyBlock(hba, `${B}\nhost replication r 10.0.0.2/32 scram-sha-256\n${E}\n`, B, E);
    expect(once).toBe(`# comment header\n#\n\n${B}\nhost replication r 10.0.0.2/32 scram-sha-256\n${E}\nlocal all postgres peer\nhost all all 0.0.0.0/0 scram-sha-256\n`);
    const again = applyBlock(once, `${B}\nhost replication r 10.0.0.3/32 scram-sha-256\n${E}\n`, B, E);
    expect(again).toBe(once.replace("10.0.0.2", "10.0.0.3"));
    expect(applyBlock(again, `${B}\nhost replication r 10.0.0.3/32 scram-sha-256\n${E}\n`, B, E)).toBe(again);
  });
  it("works on an empty file", () => {
    expect(applyBlock("", `${B}\n${E}\n`, B, E)).toBe(`${B}\n${E}\n`);
  });
});

describe("ensureLine", () => {
  it("appends once", () => {
    const once = ensureLine("a = 1", "include_if_exists = 'pgrep.conf'");
    expect(once).toBe("a = 1\ninclude_if_exists = 'pgrep.conf'\n");
    expect(ensureLine(once, "include_if_exists = 'pgrep.conf'")).toBe(once);
  });
});

describe(".pgpass merge", () => {
  it("keeps the user's lines, replaces its own, escapes : and \\", () => {
    const existing = "otherhost:5432:*:app:secret\n10.0.0.1:5432:replication:replicator:old\n10.0.0.1:5432:*:replicator:older\n";
    const merged = mergePgpass(existing, [{ host: "10.0.0.1", port: 5432, user: "replicator", password: "n:e\\w" }]);
    expect(merged).toBe("otherhost:5432:*:app:secret\n10.0.0.1:5432:*:replicator:n\\:e\\\\w\n");
    expect(mergePgpass(merged, [{ host: "10.0.0.1", port: 5432, user: "replicator", password: "n:e\\w" }])).toBe(merged);
  });
});

describe("conninfo", () => {
  it("quotes values libpq needs quoted and leaves out empty ones", () => {
    expect(conninfo({ host: "db1", port: 5432, user: "r", passfile: "/var/lib/post gres/.pgpass", application_name: "it's", sslmode: undefined })).toBe(
      "host=db1 port=5432 user=r passfile='/var/lib/post gres/.pgpass' application_name='it\\'s'",
    );
  });
});

describe("settings files", () => {
  it("reads name = value lines as PostgreSQL does: comments, quotes with doubled quotes, no '=', later lines win", () => {
    const text = "# comment\nlisten_addresses = '*'\nwal_level = replica # why\nmax_wal_senders=10\nWork_Mem 4MB\nprimary_conninfo = 'user=''x'' host=b1'\ninclude_dir 'conf.d'\nwal_level = logical\n";
    expect(Object.fromEntries(parseSettings(text))).toEqual({
      listen_addresses: "'*'",
      wal_level: "logical",
      max_wal_senders: "10",
      work_mem: "4MB",
      primary_conninfo: "'user=''x'' host=b1'",
    });
  });

  it("names the settings that differ, added or removed", () => {
    expect(changedSettings("a = 1\nb = 2\nd = 5\n", "a = 1\nb = 3\nc = 4\n").sort()).toEqual(["b", "c", "d"]);
    expect(changedSettings(null, null)).toEqual([]);
  });
});

describe("pg_hba: a DBA's reject keeps rejecting", () => {
  const block = `${B}\nhost app app 10.0.0.0/24 scram-sha-256\n${E}\n`;
  const debian = "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n";
  it("a particular reject stays above pgrep's block, wherever the DBA wrote it; the block moves below it", () => {
    const once = applyBlock(debian, block, B, E);
    expect(once.split("\n")[0]).toBe(B);
    const rejected = `${once}host app app 10.0.0.66/32 reject\n`;
    const moved = applyBlock(rejected, block, B, E);
    expect(moved).toBe(`${debian}host app app 10.0.0.66/32 reject\n${block}`);
    expect(applyBlock(moved, block, B, E)).toBe(moved);
    // One above the block already: nothing moves.
    const above = `host all baduser 0.0.0.0/0 reject\n${once}`;
    expect(applyBlock(above, block, B, E)).toBe(above);
    // The address-and-mask form, hostssl, a comment after the method.
    for (const l of ["hostssl app all 10.0.0.0 255.255.255.0 reject  # audit", "host all all 10.9.0.0/16 reject", "hostnossl all app all reject"]) expect(applyBlock(`${once}${l}\n`, block, B, E), l).toBe(`${debian}${l}\n${block}`);
  });
  it("a deny-by-default line stays below pgrep's block, and a local or commented reject does not move it", () => {
    const once = applyBlock(debian, block, B, E);
    for (const l of ["host all all 0.0.0.0/0 reject", "host all all ::/0 reject", "hostssl all all all reject", "host all all 0.0.0.0 0.0.0.0 reject", "local all all reject", "# host app app 10.0.0.66/32 reject"])
      expect(applyBlock(`${once}${l}\n`, block, B, E), l).toBe(`${once}${l}\n`);
  });
});

describe("setSetting", () => {
  it("replaces one setting's line in place, appends it when missing, takes it out for null, and quotes", () => {
    const conf = "# pgrep\nwal_level = 'replica'\nsynchronous_standby_names = 'FIRST 1 (\"db2\")'\nhot_standby = on\n";
    const moved = setSetting(conf, "synchronous_standby_names", 'FIRST 1 ("db3")');
    expect(moved).toBe(conf.replace('"db2"', '"db3"'));
    expect(setSetting(moved, "synchronous_standby_names", 'FIRST 1 ("db2")')).toBe(conf);
    expect(setSetting(conf, "synchronous_standby_names", null)).toBe("# pgrep\nwal_level = 'replica'\nhot_standby = on\n");
    expect(setSetting("a = 1\n", "b", "it's")).toBe("a = 1\nb = 'it''s'\n");
    expect(setSetting("", "b", "")).toBe("b = ''\n");
  });
});
