import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { forkInventory, withMajor, withoutHost, withTopology } from "../../../src/inventory/update.js";
import { clusterFromText } from "../../../src/inventory/index.js";

// Recording a role change rewrites only the values it means to: every other byte stays.

const changedLines = (a: string, b: string) => {
  const x = a.split("\n");
  const y = b.split("\n");
  return { removed: x.filter((l) => !y.includes(l)), added: y.filter((l) => !x.includes(l)) };
};

describe("withTopology", () => {
  it("the local demo after a switchover: two role values change, comments and their spacing stay", () => {
    const text = readFileSync(new URL("../../../inventories/local.yml", import.meta.url), "utf8");
    const next = withTopology("local.yml", text, [
      { host: "pg2", role: "primary", upstream: null },
      { host: "pg1", role: "standby", upstream: null },
      { host: "pg3", role: "standby", upstream: null },
    ]);
    expect(changedLines(text, next)).toEqual({ removed: [], added: [] }); // same lines, in other places
    expect(next.split("\n").filter((l, i) => l !== text.split("\n")[i])).toEqual(["    role: standby", "    role: primary"]);
    expect(next).toContain("  layout: generic            # plain data directories");
  });

  it("adds and removes upstream keys in block maps without touching neighbours", () => {
    const text = [
      "cluster: c1 # the cluster",
      "postgres: { major: 15 }",
      "hosts:",
      "  - name: db1",
      "    address: 10.0.0.1   # first",
      "    role: primary       # the writer",
      "  - name: db2",
      "    address: 10.0.0.2",
      "    role: standby",
      "  - name: db3",
      "    address: 10.0.0.3",
      "    role: standby",
      "    upstream: db2       # cascading",
      "",
    ].join("\n");
    const next = withTopology("c1.yml", text, [
      { host: "db2", role: "primary", upstream: null },
      { host: "db1", role: "standby", upstream: "db3" },
      { host: "db3", role: "standby", upstream: null },
    ]);
    expect(next).toBe(
      [
        "cluster: c1 # the cluster",
        "postgres: { major: 15 }",
        "hosts:",
        "  - name: db1",
        "    address: 10.0.0.1   # first",
        "    role: standby       # the writer",
        "    upstream: db3",
        "  - name: db2",
        "    address: 10.0.0.2",
        "    role: primary",
        "  - name: db3",
        "    address: 10.0.0.3",
        "    role: standby",
        "",
      ].join("\n"),
    );
  });

  it("flow maps, and an upstream that is the first key of its item", () => {
    const text = "cluster: c1\nhosts:\n  - { name: db1, address: a, role: primary }\n  - { name: db2, upstream: db1, address: b, role: standby }\n  - upstream: db2\n    name: db3\n    role: standby\n";
    const next = withTopology("c1.yml", text, [
      { host: "db2", role: "primary", upstream: null },
      { host: "db1", role: "standby", upstream: "db2" },
      { host: "db3", role: "standby", upstream: null },
    ]);
    expect(next).toBe("cluster: c1\nhosts:\n  - { name: db1, address: a, role: standby, upstream: db2 }\n  - { name: db2, address: b, role: primary }\n  - name: db3\n    role: standby\n");
  });
});

describe("unfollow's inventories", () => {
  const text = [
    "cluster: c1 # the cluster",
    "postgres: { major: 15 }",
    "replication:",
    "  synchronous: { any: 1, of: [db2, db4] }",
    "hosts:",
    "  - name: db1",
    "    address: 10.0.0.1   # first",
    "    role: primary",
    "  - name: db3           # leaves",
    "    address: 10.0.0.3",
    "    role: standby",
    "  # db4 reads from db3",
    "  - name: db4",
    "    address: 10.0.0.4",
    "    role: standby",
    "    upstream: db3",
    "  - name: db2",
    "    address: 10.0.0.2",
    "    role: standby",
    "",
  ].join("\n");

  it("the cluster without the host: its lines go, its cascading standby streams from its upstream, nothing else changes", () => {
    const next = withoutHost("c1.yml", text, "db3", [{ host: "db4", role: "standby", upstream: null }]);
    expect(changedLines(text, next)).toEqual({ removed: ["  - name: db3           # leaves", "    address: 10.0.0.3", "    upstream: db3"], added: [] });
    expect(clusterFromText("c1.yml", next).hosts.map((h) => `${h.name}:${h.upstream ?? "-"}`)).toEqual(["db1:-", "db4:db1", "db2:db1"]);
    // The last host of the list too.
    expect(withoutHost("c1.yml", text, "db2", []).endsWith("    upstream: db3\n")).toBe(true);
  });

  it("the host alone, as the primary of its own cluster, without synchronous standbys", () => {
    const fork = clusterFromText("db3.yml", forkInventory(text, "db3", "db3-fork"));
    expect([fork.name, fork.hosts.map((h) => `${h.name}:${h.role}`), fork.synchronous]).toEqual(["db3-fork", ["db3:primary"], undefined]);
    expect(forkInventory(text, "db4", "x")).not.toMatch(/upstream/);
    // Without a replication section at all.
    const plain = text.replace(/^replication:\n.*\n/m, "");
    expect(clusterFromText("x.yml", forkInventory(plain, "db2", "x")).hosts.map((h) => h.name)).toEqual(["db2"]);
  });
});

describe("withMajor", () => {
  it("rewrites postgres.major alone, in block and flow style", () => {
    const block = "cluster: c1\npostgres:\n  major: 13   # bullseye's\n  layout: debian\nhosts:\n  - { name: a, address: a, role: primary }\n";
    expect(withMajor("x.yml", block, 15)).toBe(block.replace("major: 13 ", "major: 15 "));
    const flow = "cluster: c1\npostgres: { major: 13, layout: debian }\nhosts:\n  - { name: a, address: a, role: primary }\n";
    expect(withMajor("x.yml", flow, 17)).toBe(flow.replace("major: 13", "major: 17"));
  });

  it("refuses an inventory without postgres.major rather than guess where it goes", () => {
    expect(() => withMajor("x.yml", "cluster: c1\npostgres: { layout: generic }\nhosts: []\n", 15)).toThrow(/no postgres.major to rewrite/);
  });
});
