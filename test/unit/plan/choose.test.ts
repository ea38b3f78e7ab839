import { describe, expect, it } from "vitest";
import type { Position } from "../../../src/cluster/state.js";
import { chooseStandby, formatChoice, standbysAhead, type StandbyView } from "../../../src/plan/choose.js";
import { load } from "../inventory/inventory-text.js";

// The failover's choice, on positions as observe reads them.

const inv = (extra = "", hosts = "") =>
  load(`cluster: c
postgres: { major: 15 }
${extra}
hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: 10.0.0.2, role: standby${hosts.includes("db2:") ? hosts.split("db2:")[1]!.split(";")[0] : ""} }
  - { name: db3, address: 10.0.0.3, role: standby${hosts.includes("db3:") ? hosts.split("db3:")[1]!.split(";")[0] : ""} }
  - { name: db4, address: 10.0.0.4, role: standby${hosts.includes("db4:") ? hosts.split("db4:")[1]!.split(";")[0] : ""} }
`);

const at = (name: string, received: string, over: Partial<Position> = {}): Position => ({ name, inRecovery: true, timeline: 1, received, replayed: received, streaming: false, ...over });

function views(spec: ReturnType<typeof inv>, ps: Record<string, Position | string>): StandbyView[] {
  return spec.standbys.map((host) => {
    const p = ps[host.name];
    return typeof p === "string" || p === undefined ? { host, position: undefined, why: p ?? "unreachable" } : { host, position: p, needsRejoin: false };
  });
}

const down = { name: "db1", state: "unreachable" as const };
const notFenced = { fenced: false, tieBytes: 0 };

describe("choosing the standby a failover promotes", () => {
  it("picks the one that received the most, whatever its priority or place", () => {
    const spec = inv("", "db2:, failover: { priority: 9 }");
    const c = chooseStandby(spec, views(spec, { db2: at("db2", "0/3000000"), db3: at("db3", "0/5000000"), db4: "unreachable: timed out" }), down, notFenced);
    expect(c.chosen).toBe("db3");
    expect(c.rows.find((r) => r.host === "db2")).toMatchObject({ eligible: false, behindBest: 0x2000000, note: "behind by 32.0 MB" });
    expect(c.rows.find((r) => r.host === "db4")).toMatchObject({ eligible: false, note: "unreachable: timed out" });
  });

  it("among equals: a synchronous one, then the higher priority, then the inventory's order", () => {
    const all = (spec: ReturnType<typeof inv>) => views(spec, { db2: at("db2", "0/5000000"), db3: at("db3", "0/5000000"), db4: at("db4", "0/5000000") });
    const plain = inv();
    expect(chooseStandby(plain, all(plain), down, notFenced).chosen).toBe("db2");
    const prio = inv("", "db4:, failover: { priority: 5 }");
    const p = chooseStandby(prio, all(prio), down, notFenced);
    expect(p.chosen).toBe("db4");
    expect(p.rows[0]!.note).toBe("chosen: received the most WAL, and the highest priority (5)");
    const sync = inv("replication: { synchronous: [db3] }", "db4:, failover: { priority: 5 }");
    expect(chooseStandby(sync, all(sync), down, notFenced).chosen).toBe("db3");
  });

  it("a synchronous standby that is behind is not preferred", () => {
    const spec = inv("replication: { synchronous: [db3] }");
    expect(chooseStandby(spec, views(spec, { db2: at("db2", "0/5000001"), db3: at("db3", "0/5000000"), db4: "stopped" }), down, notFenced).chosen).toBe("db2");
  });

  it("priority 0 is never chosen; when it holds the most, nothing is, rather than lose what it holds", () => {
    const spec = inv("", "db3:, failover: { priority: 0 }");
    const c = chooseStandby(spec, views(spec, { db2: at("db2", "0/3000000"), db3: at("db3", "0/5000000"), db4: at("db4", "0/3000000") }), down, notFenced);
    expect(c.chosen).toBeUndefined();
    expect(c.refusal).toMatch(/^db3 holds the most WAL but has failover priority 0/);
    const equal = chooseStandby(spec, views(spec, { db2: at("db2", "0/5000000"), db3: at("db3", "0/5000000"), db4: at("db4", "0/3000000") }), down, notFenced);
    expect(equal.chosen).toBe("db2");
  });

  it("the newest timeline wins over more WAL on an older one", () => {
    const spec = inv();
    const c = chooseStandby(spec, views(spec, { db2: at("db2", "0/9000000"), db3: at("db3", "0/5000000", { timeline: 2 }), db4: "stopped" }), down, notFenced);
    expect(c.chosen).toBe("db3");
    expect(c.rows.find((r) => r.host === "db2")!.note).toBe("on timeline 1, older than 2");
  });

  it("with the primary stopped cleanly first, streaming standbys within the lag limit hold the same", () => {
    const spec = inv("", "db3:, failover: { priority: 3 }");
    const ps = { db2: at("db2", "0/5000100", { streaming: true }), db3: at("db3", "0/5000000", { streaming: true }), db4: at("db4", "0/5000200") };
    const c = chooseStandby(spec, views(spec, ps), { name: "db1", state: "writable" }, { fenced: true, tieBytes: 1024 });
    expect(c.chosen).toBe("db3");
    expect(c.rows.find((r) => r.host === "db4")!.note).toBe("holds as much; lower priority than db3");
    // Declared down, the same positions are compared exactly.
    expect(chooseStandby(spec, views(spec, ps), down, notFenced).chosen).toBe("db4");
  });

  it("the old primary's row says what it wrote that no standby received", () => {
    const spec = inv();
    const c = chooseStandby(spec, views(spec, { db2: at("db2", "0/5000000"), db3: at("db3", "0/4000000"), db4: "stopped" }), { name: "db1", state: "stopped", walEnd: { timeline: 1, end: "0/5100000" } }, notFenced);
    expect(c.oldPrimary).toEqual({ name: "db1", end: "0/5100000", beyondBest: 0x100000, note: "stopped; wrote 1.0 MB no standby received" });
    const table = formatChoice(c).join("\n");
    expect(table).toMatch(/^ {2}→ db2 +1 +0\/5000000 +0\/5000000 +0 B +1 +chosen: received the most WAL$/m);
    expect(table).toMatch(/^ {4}db1 .*old primary +stopped; wrote 1\.0 MB no standby received$/m);
  });
});

describe("a named standby that others are ahead of", () => {
  it("names each standby that received more, with how much", () => {
    const spec = inv();
    const vs = views(spec, { db2: at("db2", "0/3000000"), db3: at("db3", "0/3000010"), db4: at("db4", "0/2000000") });
    expect(standbysAhead(at("db2", "0/3000000"), vs)).toEqual([{ host: "db3", bytes: 16 }]);
    expect(standbysAhead(at("db3", "0/3000010"), vs)).toEqual([]);
  });
});
