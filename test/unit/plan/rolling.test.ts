import { describe, expect, it } from "vitest";
import { RefusedError } from "../../../src/errors.js";
import type { ClusterSpec } from "../../../src/model/cluster.js";
import type { ReachableHost } from "../../../src/cluster/state.js";
import { parseInventory } from "../../../src/inventory/load.js";
import { resolveCluster } from "../../../src/inventory/resolve.js";
import { applyEdit, planSetup } from "../../../src/plan/setup.js";
import { planRestart } from "../../../src/plan/rolling.js";
import type { Phase, Plan } from "../../../src/plan/steps.js";
import { emptyHost, runningHost, snapshot } from "./fixtures.js";

// Restarts for settings take one host away at a time: the standbys, each streaming again before the
// next, then the primary; the primary first when it lowers what a standby may not have below it.

function cluster(settings = "", synchronous = ""): ClusterSpec {
  const text = `cluster: c1
postgres: { major: 15, layout: debian${settings ? `, settings: { ${settings} }` : ""} }
${synchronous ? `replication: { synchronous: ${synchronous} }\n` : ""}hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: 10.0.0.2, role: standby }
  - { name: db3, address: 10.0.0.3, role: standby }
`;
  const { inventory, doc, lines } = parseInventory("/inv/c1.yml", text);
  return resolveCluster("/inv/c1.yml", inventory, doc, lines);
}

/** Every host as the first setup of `s` left it: running, files written, both standbys streaming through their slots. */
function converged(s: ClusterSpec, over: Partial<Record<string, (h: ReachableHost) => ReachableHost>> = {}) {
  const fresh = planSetup(s, snapshot(15, ...s.hosts.map((h) => emptyHost(s, h.name))), { force: new Set() });
  const written = (host: string) => {
    const out: Record<string, string> = {};
    for (const p of fresh.phases) for (const l of p.lanes) for (const x of l.steps) if (x.host === host && x.kind === "edit-file") out[x.file.path] = applyEdit("", x.edit);
    return out;
  };
  const hosts = s.hosts.map((h) => {
    const r = runningHost(s, h.name, "7001", h.role === "standby");
    const f = written(h.name);
    let state: ReachableHost = { ...r, files: { ...r.files, settings: f[r.layout.settingsFile]!, hba: f[r.layout.hbaFile]! } };
    if (h.role === "primary") {
      const replication = ["db2", "db3"].map((n) => ({ application_name: n, client_addr: "10.0.0.9", state: "streaming", sync_state: "async", sent_lsn: "0/3000000", replay_lsn: "0/3000000", lag_bytes: 0, replay_lag_s: null }));
      const slots = ["db2", "db3"].map((n) => ({ name: `pgrep_${n}`, active: true, retained_bytes: 0, wal_status: "reserved" }));
      state = { ...state, sql: { ...state.sql!, replication, slots } };
    }
    return over[h.name]?.(state) ?? state;
  });
  return snapshot(15, ...hosts);
}

/** Each phase as "host: step kinds", the restarts as "restart". */
function shape(phases: Phase[]): string[] {
  return phases.map((p) => p.lanes.map((l) => `${l.host}: ${l.steps.map((x) => (x.kind === "restart-if-pending" || (x.kind === "control" && x.action === "restart") ? "restart" : x.kind === "control" ? x.action : x.kind)).join(",")}`).join(" | "));
}

const plan = (s: ClusterSpec, snap = converged(cluster()), restartPrimary?: string): Plan => planSetup(s, snap, { force: new Set(), restartPrimary });

describe("setup restarts for a setting one host at a time", () => {
  it("a raised setting: every host's files and reload at once, then db2, db3, each streaming again, then the primary last", () => {
    const p = plan(cluster("max_connections: 200"));
    expect(shape(p.phases)).toEqual([
      "db1: edit-file,reload | db2: edit-file,reload,wait-streaming | db3: edit-file,reload,wait-streaming",
      "db2: restart,wait-streaming",
      "db3: restart,wait-streaming",
      "db1: restart",
      "db2: wait-streaming | db3: wait-streaming",
    ]);
    expect(p.phases.at(-2)!.title).toBe("restart one host at a time (3 of 3): db1, last");
    expect(p.phases[1]!.lanes[0]!.steps[0]!.why).toBe("max_connections only changes at a restart");
  });

  it("a lowered setting a standby may not have below its primary: the primary first, each standby once it has replayed the primary's new value", () => {
    const p = plan(cluster("max_connections: 50"));
    expect(shape(p.phases).slice(1)).toEqual([
      "db1: restart",
      "db2: wait-streaming | db3: wait-streaming",
      "db2: catch-up,restart,wait-streaming",
      "db3: catch-up,restart,wait-streaming",
    ]);
    expect(p.phases[1]!.title).toContain("first: it lowers max_connections");
    // Taken out of the inventory, it falls back to postgresql.conf's value (100 here), lower than the running 200.
    const at200 = (h: ReachableHost): ReachableHost => ({ ...h, sql: { ...h.sql!, standbyMinimums: { ...h.sql!.standbyMinimums, max_connections: { now: "200", others: "100", auto: null, boot: "100" } } } });
    const raised = converged(cluster("max_connections: 200"), { db1: at200, db2: at200, db3: at200 });
    expect(shape(plan(cluster(), raised).phases).slice(1, 3)).toEqual(["db1: restart", "db2: wait-streaming | db3: wait-streaming"]);
    // A lowered setting a standby need not match keeps the usual order.
    expect(shape(plan(cluster("shared_buffers: 64MB")).phases).slice(1)).toEqual(["db2: restart,wait-streaming", "db3: restart,wait-streaming", "db1: restart", "db2: wait-streaming | db3: wait-streaming"]);
  });

  it("--restart-primary switchover: the standbys one at a time, then a switchover to the first streaming standby (or the one named)", () => {
    const s = cluster("max_connections: 200");
    expect(shape(plan(s, converged(cluster()), "switchover").phases).slice(1)).toEqual(["db2: restart,wait-streaming", "db3: restart,wait-streaming", "db2: switchover"]);
    expect(shape(plan(s, converged(cluster()), "db3").phases).at(-1)).toBe("db3: switchover");
    expect(() => plan(s, converged(cluster()), "db9")).toThrow(/--restart-primary db9: not a standby of the primary db1/);
    // Lowering that setting cannot go through a switchover: the standbys could not start below the running primary.
    expect(() => plan(cluster("max_connections: 50"), converged(cluster()), "switchover")).toThrow(RefusedError);
  });

  it("a primary its standbys do not stream from yet (just promoted) restarts in its own lane, first; a host that does not stream is not waited for", () => {
    const s = cluster("max_connections: 200");
    const notYet = converged(cluster(), { db1: (h) => ({ ...h, sql: { ...h.sql!, replication: h.sql!.replication.filter((r) => r.application_name !== "db2" && r.application_name !== "db3") } }) });
    expect(shape(plan(s, notYet).phases)[0]).toMatch(/^db1: edit-file,reload,restart/);
    // db3 streams, db2 does not (a former primary waiting for rejoin, say): only db3 is waited for after the primary's restart.
    const oneStreams = converged(cluster(), { db1: (h) => ({ ...h, sql: { ...h.sql!, replication: h.sql!.replication.filter((r) => r.application_name !== "db2") } }) });
    expect(shape(plan(s, oneStreams).phases).at(-1)).toBe("db3: wait-streaming");
  });

  it("a primary that new standbys are copied from restarts in its own lane, before the copies", () => {
    const s = cluster("max_connections: 200");
    const snap = converged(cluster(), { db3: () => emptyHost(s, "db3") });
    const p = plan(s, snap);
    expect(shape(p.phases)).toEqual([
      "db1: edit-file,reload,restart",
      "db2: edit-file,reload,wait-streaming | db3: write-passfile,clone,edit-file,edit-file,edit-file,start,remove-file,wait-streaming",
      "db2: restart,wait-streaming",
    ]);
  });

});

describe("pgrep restart", () => {
  const s = cluster();
  it("restarts the standbys one at a time, then the primary; a named host alone", () => {
    expect(shape(planRestart(s, converged(s), [], "restart").phases)).toEqual(["db2: restart,wait-streaming", "db3: restart,wait-streaming", "db1: restart", "db2: wait-streaming | db3: wait-streaming"]);
    expect(shape(planRestart(s, converged(s), ["db3"], "restart").phases)).toEqual(["db3: restart,wait-streaming"]);
  });

  it("a setting waiting to go down: the primary first, and no switchover (the standbys could not start below it)", () => {
    const at200 = (h: ReachableHost): ReachableHost => ({ ...h, sql: { ...h.sql!, standbyMinimums: { ...h.sql!.standbyMinimums, max_connections: { now: "200", others: "100", auto: null, boot: "100" } } } });
    const snap = converged(s, { db1: at200 });
    expect(shape(planRestart(s, snap, [], "restart").phases)[0]).toBe("db1: restart");
    expect(planRestart(s, snap, [], "switchover").problems).toEqual(["--restart-primary switchover: max_connections goes down, and a standby cannot start below its primary's value; let the primary restart first (leave out --restart-primary)"]);
  });

  it("a synchronous standby restarts: commits wait for another streaming standby meanwhile, or for none; put back once it streams", () => {
    const settingOf = (p: Phase[], host: string) =>
      p.flatMap((ph) => ph.lanes).filter((l) => l.host === host).flatMap((l) => l.steps).flatMap((x) => (x.kind === "edit-file" && x.edit.type === "setting" ? [`${x.host}: ${x.edit.value}`] : []));
    // db2 alone is synchronous: while it restarts, db3 (streaming, not named) takes its place.
    const one = cluster("", "[db2]");
    const moved = planRestart(one, converged(one), [], "restart").phases;
    expect(shape(moved)[0]).toBe("db2: edit-file,reload,restart,wait-streaming,edit-file,reload");
    expect(settingOf(moved, "db2")).toEqual(['db1: FIRST 1 ("db3")', 'db1: FIRST 1 ("db2")']);
    // db3's restart leaves db2 synchronous: nothing changes.
    expect(shape(moved)[1]).toBe("db3: restart,wait-streaming");
    // Both named, both needed: the one left is all there is while the other restarts; with db3 down too, none.
    const both = cluster("", "[db2, db3]");
    expect(settingOf(planRestart(both, converged(both), [], "restart").phases, "db2")).toEqual(['db1: FIRST 1 ("db3")', 'db1: FIRST 2 ("db2", "db3")']);
    const quorum = cluster("", "{ any: 1, of: [db2, db3] }");
    expect(settingOf(planRestart(quorum, converged(quorum), [], "restart").phases, "db2")).toEqual([]);
    const db3Gone = (h: ReachableHost): ReachableHost => ({ ...h, sql: { ...h.sql!, replication: h.sql!.replication.filter((r) => r.application_name !== "db3") } });
    const relaxed = planRestart(one, converged(one, { db1: db3Gone }), ["db2"], "restart").phases;
    expect(settingOf(relaxed, "db2")).toEqual(["db1: ", 'db1: FIRST 1 ("db2")']);
    expect(relaxed[0]!.lanes[0]!.steps[0]!.why).toBe("db2 is a synchronous standby and restarts: commits wait for no standby meanwhile, so that no commit waits for its restart");
  });

  it("refuses a host whose PostgreSQL is not running", () => {
    const snap = converged(s, { db3: (h) => ({ ...h, running: false, sql: undefined }) });
    expect(planRestart(s, snap, [], "restart").problems).toEqual(["db3: PostgreSQL is not running; pgrep setup starts it"]);
  });
});
