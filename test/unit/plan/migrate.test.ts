import { describe, expect, it } from "vitest";
import { migrateProblems, type MigrateFacts } from "../../../src/plan/migrate.js";
import { tableHashSql } from "../../../src/postgres/logical.js";
import { load } from "../inventory/inventory-text.js";

// What pgrep migrate refuses before it changes anything, from facts as the old primary gives them.

const cluster = (name: string, major: number, hosts: string[], settings = "wal_level: logical") =>
  load(`cluster: ${name}
postgres: { major: ${major}, settings: { ${settings} } }
hosts:
${hosts.map((h, i) => `  - { name: ${h}, address: 10.0.${name === "old" ? 1 : 2}.${i + 1}, role: ${i ? "standby" : "primary"} }`).join("\n")}
`);

const facts = (over: Partial<MigrateFacts> = {}): MigrateFacts => ({
  walLevel: "logical",
  databases: [{ name: "app", oid: 16384, owner: "app", encoding: "UTF8", collate: "C.UTF-8", ctype: "C.UTF-8" }],
  schemas: new Map([["app", { tables: [{ schema: "public", name: "items", key: ["id"], intKey: true, unlogged: false }], schemas: ["public"], largeObjects: 0 }]]),
  preparedXacts: 0,
  freeSlots: 5,
  ...over,
});

const old = cluster("old", 13, ["o1", "o2"]);
const next = cluster("new", 15, ["n1", "n2"]);

describe("migrate's checks", () => {
  it("none when logical replication carries everything", () => {
    expect(migrateProblems(old, next, facts(), "old.yml", "new.yml")).toEqual([]);
  });

  it("names each thing it could not carry, with its fix", () => {
    const f = facts({
      walLevel: "replica",
      preparedXacts: 1,
      freeSlots: 0,
      schemas: new Map([["app", { tables: [{ schema: "public", name: "log", key: null, intKey: false, unlogged: false }, { schema: "s", name: "cache", key: ["k"], intKey: false, unlogged: true }], schemas: ["public", "s"], largeObjects: 2 }]]),
    });
    const p = migrateProblems(old, cluster("new", 12, ["n1"], "work_mem: 4MB"), f, "old.yml", "new.yml");
    expect(p).toEqual([
      expect.stringMatching(/^o1: wal_level is replica; .*Add wal_level: logical to postgres\.settings in old\.yml/),
      expect.stringMatching(/^new\.yml must set wal_level: logical/),
      expect.stringMatching(/^new\.yml is at PostgreSQL 12, older than 13/),
      expect.stringMatching(/^o1: 1 replication slots needed \(one per database\), 0 free/),
      expect.stringMatching(/^o1: 1 prepared transaction/),
      expect.stringMatching(/^app: "public"\."log" has no primary key/),
      expect.stringMatching(/^app: "s"\."cache" is unlogged/),
      expect.stringMatching(/^app: 2 large object/),
    ]);
  });

  it("refuses hosts both inventories name", () => {
    const same = cluster("new", 15, ["o2", "n2"]);
    expect(migrateProblems(old, same, facts(), "old.yml", "new.yml")).toEqual([expect.stringMatching(/^o2: in both inventories/)]);
  });
});

describe("the row check", () => {
  it("orders by the whole key and quotes every name", () => {
    const sql = tableHashSql({ schema: "Odd\"s", name: "t", key: ["a", "B c"], intKey: false, unlogged: false }, true);
    expect(sql).toContain('ORDER BY "a", "B c"');
    expect(sql).toContain('FROM "Odd""s"."t" t');
  });

  it("an integer key: ranges of it, summed 64-bit hashes, no sort", () => {
    const sql = tableHashSql({ schema: "public", name: "t", key: ["id"], intKey: true, unlogged: false }, true);
    expect(sql).toMatch(/^SET enable_sort = off;/);
    expect(sql).toContain('"id" / 50000 c, count(*) n, sum(hashtextextended(t::text, 0))');
    expect(tableHashSql({ schema: "public", name: "t", key: ["id"], intKey: true, unlogged: false }, false)).toContain("hashtext(t::text)::bigint");
  });
});
