import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { withTopology } from "../../../src/inventory/update.js";

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
