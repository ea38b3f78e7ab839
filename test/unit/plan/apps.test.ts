import { describe, expect, it } from "vitest";
import { RefusedError } from "../../../src/errors.js";
import { parseInventory } from "../../../src/inventory/load.js";
import { resolveCluster } from "../../../src/inventory/resolve.js";
import { applyEdit, planSetup } from "../../../src/plan/setup.js";
import type { Plan, Step } from "../../../src/plan/steps.js";
import { emptyHost, runningHost, snapshot, sql } from "./fixtures.js";

const text = (tls = false, major = 15) => `cluster: c1
postgres: { major: ${major} }
replication: { tls: ${tls} }
applications:
  roles:
    - { name: shop, password: { env: SHOP_PW } }
    - { name: reports }
  databases:
    - { name: shop, owner: shop, connect: [shop, reports] }
  access:
    - { database: shop, user: [shop, reports], source: 10.1.0.0/16 }
    - { database: shop, user: reports, source: samenet, client_cert: verify-ca }
hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: 10.0.0.2, role: standby }
`;
const load = (t: string) => {
  const { inventory, doc, lines } = parseInventory("/inv/c1.yml", t);
  return resolveCluster("/inv/c1.yml", inventory, doc, lines);
};
const s = load(text(true).replace("client_cert: verify-ca", "client_cert: verify-ca"));
const plain = load(text(false).replace(", client_cert: verify-ca", ""));

function steps(plan: Plan, host: string): Step[] {
  return plan.phases.flatMap((p) => p.lanes.filter((l) => l.host === host).flatMap((l) => l.steps));
}

const appSteps = (plan: Plan) => steps(plan, "db1").filter((x) => x.kind === "app-roles" || x.kind === "app-databases");

/** A running pair whose primary has what `apps` says. */
function cluster(spec = plain, apps = sql().apps) {
  const p = runningHost(spec, "db1", "7001", false);
  return snapshot(15, { ...p, sql: { ...p.sql!, apps } }, runningHost(spec, "db2", "7001", true));
}

const matching = {
  roles: [
    { name: "shop", login: true, superuser: false, passwordOk: true },
    { name: "reports", login: true, superuser: false, passwordOk: true },
  ],
  databases: [{ name: "shop", owner: "shop", encoding: "UTF8", collate: "C.UTF-8", ctype: "C.UTF-8", connect: ["shop", "reports"] }],
};

describe("application access, roles and databases in the setup plan", () => {
  it("every host's pg_hba block gets the rules, hostssl with TLS, clientcert where asked", () => {
    const plan = planSetup(s, snapshot(15, emptyHost(s, "db1"), emptyHost(s, "db2")), { force: new Set(), apps: true });
    for (const host of ["db1", "db2"]) {
      const hba = steps(plan, host).find((x) => x.kind === "edit-file" && x.file.path.endsWith("pg_hba.conf")) as Extract<Step, { kind: "edit-file" }>;
      const text = applyEdit("", hba.edit);
      expect(text).toMatch(/^hostssl shop    shop,reports    10\.1\.0\.0\/16    scram-sha-256    # applications\.access\[0\]$/m);
      expect(text).toMatch(/^hostssl shop    reports    samenet    scram-sha-256 clientcert=verify-ca    # applications\.access\[1\]$/m);
    }
    const ten = load(text(true, 10));
    const old = planSetup(ten, snapshot(10, emptyHost(ten, "db1"), emptyHost(ten, "db2")), { force: new Set(), apps: true });
    const hba10 = steps(old, "db1").find((x) => x.kind === "edit-file" && x.file.path.endsWith("pg_hba.conf")) as Extract<Step, { kind: "edit-file" }>;
    expect(applyEdit("", hba10.edit)).toMatch(/samenet    scram-sha-256 clientcert=1    #/);
  });

  it("a fresh primary: roles, then the database with CONNECT for the named roles only", () => {
    const plan = planSetup(plain, snapshot(15, emptyHost(plain, "db1"), emptyHost(plain, "db2")), { force: new Set(), apps: true });
    // After the primary runs and its replication role exists; before any standby is copied (they get them by replication).
    const primary = steps(plan, "db1").map((x) => x.kind);
    expect(primary.slice(-2)).toEqual(["app-roles", "app-databases"]);
    expect(primary.indexOf("control")).toBeLessThan(primary.indexOf("app-roles"));
    expect(plan.phases[0]!.lanes.map((l) => l.host)).toEqual(["db1"]);
    expect(appSteps(plan)).toMatchObject([{ roles: ["shop", "reports"] }, { create: ["shop"], connect: ["shop"] }]);
  });

  it("nothing to do when they match; role changes (apps not asked) never touch them", () => {
    expect(appSteps(planSetup(plain, cluster(plain, matching), { force: new Set(), apps: true }))).toEqual([]);
    expect(appSteps(planSetup(plain, cluster(plain, undefined), { force: new Set() }))).toEqual([]);
  });

  it("a changed password or lost LOGIN is put back; PUBLIC's CONNECT is taken", () => {
    const drifted = {
      roles: [matching.roles[0]!, { ...matching.roles[1]!, passwordOk: false }],
      databases: [{ ...matching.databases[0]!, connect: ["PUBLIC", "shop"] }],
    };
    const st = appSteps(planSetup(plain, cluster(plain, drifted), { force: new Set(), apps: true }));
    expect(st).toMatchObject([
      { kind: "app-roles", roles: ["reports"], why: "reports: its password is not the inventory's" },
      { kind: "app-databases", create: [], connect: ["shop"] },
    ]);
  });

  it("an existing database with another owner, encoding or locale is reported, not changed", () => {
    const other = { ...matching, databases: [{ ...matching.databases[0]!, owner: "postgres", encoding: "LATIN1" }] };
    const plan = planSetup(plain, cluster(plain, other), { force: new Set(), apps: true });
    expect(appSteps(plan)).toEqual([]);
    expect(plan.notes).toContain("database shop: exists on db1 with owner postgres (the inventory says shop; ALTER DATABASE shop OWNER TO shop), encoding LATIN1 (the inventory says UTF8); pgrep does not change it");
  });

  it("refuses an owner that is neither declared nor on the primary", () => {
    const spec = load(text(false).replace(", client_cert: verify-ca", "").replace("owner: shop", "owner: ghost"));
    expect(() => planSetup(spec, cluster(spec, matching), { force: new Set(), apps: true })).toThrow(RefusedError);
    expect(() => planSetup(spec, cluster(spec, matching), { force: new Set(), apps: true })).toThrow(/applications\.databases\[0\] \(shop\): role 'ghost' is neither in applications\.roles nor on db1/);
  });
});
