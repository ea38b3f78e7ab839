import { describe, expect, it } from "vitest";
import { parseInventory } from "../../../src/inventory/load.js";
import { resolveCluster } from "../../../src/inventory/resolve.js";
import { withTopology } from "../../../src/inventory/update.js";
import { recordNewPrimary } from "../../../src/plan/role-steps.js";
import { applyEdit, planSetup } from "../../../src/plan/setup.js";
import type { Plan } from "../../../src/plan/steps.js";
import { synchronousStandbyNames } from "../../../src/postgres/replication.js";
import { emptyHost, runningHost, snapshot } from "./fixtures.js";

// Cascading standbys: db3 streams from db2, which streams from db1; db4 from db3 (two levels down).

const text = `cluster: c1
postgres: { major: 15 }
hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: 10.0.0.2, role: standby }
  - { name: db3, address: 10.0.0.3, role: standby, upstream: db2 }
  - { name: db4, address: 10.0.0.4, role: standby, upstream: db3 }
`;
const load = (t: string) => {
  const { inventory, doc, lines } = parseInventory("/inv/c1.yml", t);
  return resolveCluster("/inv/c1.yml", inventory, doc, lines);
};
const s = load(text);
const none = { force: new Set<string>() };

function stepsOf(plan: Plan, host: string) {
  return plan.phases.flatMap((p) => p.lanes.filter((l) => l.host === host).flatMap((l) => l.steps));
}

describe("cascading standbys", () => {
  it("a fresh cluster is built level by level: each standby is copied from its upstream once that one streams", () => {
    const plan = planSetup(s, snapshot(15, ...["db1", "db2", "db3", "db4"].map((n) => emptyHost(s, n))), none);
    expect(plan.phases.map((p) => [p.title, p.lanes.map((l) => l.host)])).toEqual([
      ["primary db1", ["db1"]],
      ["standbys", ["db2"]],
      ["cascading standbys (2 hops from the primary)", ["db3"]],
      ["cascading standbys (3 hops from the primary)", ["db4"]],
    ]);
    expect(stepsOf(plan, "db3").find((x) => x.kind === "clone")).toMatchObject({ from: "db2" });
    expect(stepsOf(plan, "db4").find((x) => x.kind === "wait-streaming")).toMatchObject({ upstream: "db3" });
    // Each slot lives on the host its standby streams from.
    const slots = (h: string) => stepsOf(plan, h).filter((x) => x.kind === "slots").flatMap((x) => (x.kind === "slots" ? x.create : []));
    expect([slots("db1"), slots("db2"), slots("db3"), slots("db4")]).toEqual([["pgrep_db2"], ["pgrep_db3"], ["pgrep_db4"], []]);
    const conf = stepsOf(plan, "db3").flatMap((x) => (x.kind === "edit-file" && x.file.path.endsWith("pgrep.conf") ? [applyEdit("", x.edit)] : []))[0]!;
    expect(conf).toMatch(/^primary_conninfo = '.*host=10\.0\.0\.2 .*application_name=db3'$/m);
    expect(conf).toMatch(/^primary_slot_name = 'pgrep_db3'$/m);
  });

  it("a running upstream standby gets the slot of a new cascading standby", () => {
    const plan = planSetup(s, snapshot(15, runningHost(s, "db1", "7", false), runningHost(s, "db2", "7", true), emptyHost(s, "db3"), emptyHost(s, "db4")), none);
    expect(stepsOf(plan, "db2").find((x) => x.kind === "slots")).toMatchObject({ create: ["pgrep_db3"], drop: [] });
  });

  it("a promotion keeps other standbys' cascades, and re-points the old primary's and the target's standbys", () => {
    const step = recordNewPrimary(s, "db3");
    const next = load(withTopology("/inv/c1.yml", text, step.kind === "record" ? step.changes : []));
    expect(next.hosts.map((h) => [h.name, h.role, h.upstream ?? null])).toEqual([
      ["db1", "standby", "db3"],
      ["db2", "standby", "db3"],
      ["db3", "primary", null],
      ["db4", "standby", "db3"],
    ]);
    // db4 streams from db2, which is neither the old primary nor the target: it stays where it is.
    const otherText = text.replace("role: standby, upstream: db3", "role: standby, upstream: db2");
    const step2 = recordNewPrimary(load(otherText), "db3");
    const next2 = load(withTopology("/inv/c1.yml", otherText, step2.kind === "record" ? step2.changes : []));
    expect(next2.hosts.map((h) => [h.name, h.upstream ?? null])).toEqual([["db1", "db3"], ["db2", "db3"], ["db3", null], ["db4", "db2"]]);
  });

  it("a cascading standby is never counted as synchronous", () => {
    const sync = load(text.replace("hosts:", "replication: { synchronous: [db2] }\nhosts:"));
    expect(synchronousStandbyNames(sync)).toBe('FIRST 1 ("db2")');
    expect(() => load(text.replace("hosts:", "replication: { synchronous: [db2, db3] }\nhosts:"))).toThrow(
      /replication\.synchronous\[1\]: 'db3' streams from the standby 'db2'; only a standby of the primary can be synchronous/,
    );
  });

  it("upstreams that never reach the primary are one error, at the first host of the cycle", () => {
    const cyclic = text.replace("name: db2, address: 10.0.0.2, role: standby", "name: db2, address: 10.0.0.2, role: standby, upstream: db4");
    let message = "";
    try {
      load(cyclic);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message.split("\n")).toEqual(["/inv/c1.yml:5:62: hosts[1].upstream: upstreams form a cycle (db2 → db4 → db3 → db2); one of them must stream from the primary"]);
  });
});
