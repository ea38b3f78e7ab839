import { describe, expect, it } from "vitest";
import { RefusedError } from "../../../src/errors.js";
import { applyEdit, planSetup } from "../../../src/plan/setup.js";
import { stepCount, type Plan } from "../../../src/plan/steps.js";
import type { ClusterSpec } from "../../../src/model/cluster.js";
import { emptyHost, runningHost, snapshot, spec } from "./fixtures.js";

const none = { force: new Set<string>() };

/** Every file the plan writes on a host, as it would be written to an empty file. */
function files(plan: Plan, host: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of plan.phases) for (const l of p.lanes) for (const s of l.steps) if (s.host === host && s.kind === "edit-file") out[s.file.path] = applyEdit("", s.edit);
  return out;
}

function kinds(plan: Plan, host: string): string[] {
  return plan.phases.flatMap((p) => p.lanes.filter((l) => l.host === host).flatMap((l) => l.steps.map((s) => (s.kind === "control" ? `control:${s.action}` : s.kind))));
}

describe("planSetup on a fresh cluster renders what each major and layout needs", () => {
  for (const layout of ["debian", "rhel", "generic"] as const) {
    for (const major of [10, 11, 12, 13, 15, 16, 18]) {
      it(`PostgreSQL ${major}, ${layout}`, () => {
        const s = spec(major, layout);
        const plan = planSetup(s, snapshot(major, emptyHost(s, "db1"), emptyHost(s, "db2")), none);
        const primary = files(plan, "db1");
        const standby = files(plan, "db2");
        expect({ primary, standby }).toMatchSnapshot();
        const all = Object.values(standby).join("\n") + Object.values(primary).join("\n");
        // Settings a major does not know stop its server from starting.
        if (major >= 13) expect(all).not.toMatch(/wal_keep_segments/);
        if (major <= 12) expect(all).not.toMatch(/wal_keep_size/);
        const signal = Object.keys(standby).some((p) => p.endsWith("/standby.signal"));
        const recoveryConf = Object.keys(standby).some((p) => p.endsWith("/recovery.conf"));
        // 10/11 ignore standby.signal (the copy would come up writable); 12+ refuse to start with recovery.conf.
        expect({ signal, recoveryConf }).toEqual(major <= 11 ? { signal: false, recoveryConf: true } : { signal: true, recoveryConf: false });
        // On 10/11 primary_conninfo in postgresql.conf (or an included file) is FATAL: only recovery.conf has it.
        const conninfoIn = Object.entries(standby).filter(([, text]) => /^primary_conninfo/m.test(text)).map(([path]) => path.split("/").at(-1));
        expect(conninfoIn).toEqual([major <= 11 ? "recovery.conf" : "pgrep.conf"]);
        expect(kinds(plan, "db2")).toContain("clone");
        expect(kinds(plan, "db1")).toEqual(expect.arrayContaining(["create-cluster", "control:start", "ensure-role"]));
      });
    }
  }
});

describe("layouts", () => {
  it("rhel: configuration inside PGDATA, PGDG paths, systemctl when systemd runs, pg_ctl otherwise", () => {
    const s = spec(16, "rhel");
    const withSystemd = emptyHost(s, "db1", true).layout;
    expect(withSystemd.dataDir).toBe("/var/lib/pgsql/16/data");
    expect(withSystemd.settingsFile).toBe("/var/lib/pgsql/16/data/pgrep.conf");
    expect(withSystemd.control.restart.argv).toEqual(["systemctl", "restart", "postgresql-16"]);
    const without = emptyHost(s, "db1", false).layout;
    expect(without.control.start.argv.slice(0, 3)).toEqual(["/usr/lib/postgresql/16/bin/pg_ctl", "-D", "/var/lib/pgsql/16/data"]);
    expect(without.control.start.user).toBe("postgres");
  });

  it("debian: pg_ctlcluster (a reload is pg_ctl's signal), configuration in /etc, settings in conf.d", () => {
    const l = emptyHost(spec(13), "db1").layout;
    expect(l.control.restart.argv).toEqual(["pg_ctlcluster", "13", "main", "restart"]);
    expect(l.control.reload).toEqual({ argv: ["/usr/lib/postgresql/13/bin/pg_ctl", "-D", "/var/lib/postgresql/13/main", "reload"], user: "postgres" });
    expect(l.settingsFile).toBe("/etc/postgresql/13/main/conf.d/pgrep.conf");
    expect(l.includeLine).toBeNull();
  });

  it("renders inventory settings after pgrep's own, so they win", () => {
    const s = spec(15, "debian", ", settings: { max_wal_senders: 20, shared_buffers: 1GB, log_connections: true }");
    const plan = planSetup(s, snapshot(15, emptyHost(s, "db1"), emptyHost(s, "db2")), none);
    const conf = files(plan, "db1")["/etc/postgresql/15/main/conf.d/pgrep.conf"]!;
    expect(conf).toMatch(/max_wal_senders = 10[\s\S]*max_wal_senders = '20'\nshared_buffers = '1GB'\nlog_connections = 'on'/);
  });
});

describe("planSetup keeps data safe", () => {
  const s = spec(15);
  const primary = runningHost(s, "db1", "7001", false);

  it("plans nothing for a healthy cluster", () => {
    const p = upToDate(primary);
    const streaming = [{ application_name: "db2", client_addr: "10.0.0.2", state: "streaming", sync_state: "async", sent_lsn: "0/3000000", replay_lsn: "0/3000000", lag_bytes: 0, replay_lag_s: null }];
    const withSlot = { ...p, sql: { ...p.sql!, replication: streaming, slots: [{ name: "pgrep_db2", active: true, retained_bytes: 0, wal_status: "reserved" }] } };
    const plan = planSetup(s, snapshot(15, withSlot, upToDate(runningHost(s, "db2", "7001", true))), none);
    expect(stepCount(plan)).toBe(0);
  });

  it("waits for a running standby that does not stream now, and changes nothing else on it", () => {
    const plan = planSetup(s, snapshot(15, upToDate(primary), upToDate(runningHost(s, "db2", "7001", true))), none);
    expect(plan.phases.find((ph) => ph.title === "standbys")!.lanes).toEqual([{ host: "db2", steps: [{ kind: "wait-streaming", host: "db2", upstream: "db1", why: "it does not stream now" }] }]);
  });

  it("runs a standby's lane beside the primary's when it needs nothing from it: not a restart, its slot, or a new pg_hba line", () => {
    const streaming = [{ application_name: "db2", client_addr: "10.0.0.2", state: "streaming", sync_state: "async", sent_lsn: "0/3000000", replay_lsn: "0/3000000", lag_bytes: 0, replay_lag_s: null }];
    const slot = [{ name: "pgrep_db2", active: true, retained_bytes: 0, wal_status: "reserved" }];
    const p = upToDate(primary);
    const healthy = { ...p, sql: { ...p.sql!, replication: streaming, slots: slot } };
    const phasesOf = (plan: Plan) => plan.phases.map((ph) => ph.lanes.map((l) => l.host).join("+"));
    const withSetting = (setting: string) => spec(15, "debian", `, settings: { ${setting} }`);
    const plan = (sp: ClusterSpec, P: typeof primary) => planSetup(sp, snapshot(15, P, upToDate(runningHost(sp, "db2", "7001", true))), none);

    // A reloadable setting: both reload at once.
    expect(phasesOf(plan(withSetting("work_mem: 64MB"), healthy))).toEqual(["db1+db2"]);
    // A setting that needs a restart: both reload at once, then the standby restarts, the primary last (rolling.test.ts).
    expect(phasesOf(plan(withSetting("max_connections: 200"), healthy))).toEqual(["db1+db2", "db2", "db1", "db2"]);
    // Its slot is still to be made on the primary.
    expect(phasesOf(plan(withSetting("work_mem: 64MB"), { ...healthy, sql: { ...healthy.sql, slots: [] } }))).toEqual(["db1", "db2"]);
    // The primary's pg_hba.conf does not admit it yet.
    const hba = healthy.files.hba!.replace(/^.*# db2\n/gm, "");
    expect(phasesOf(plan(withSetting("work_mem: 64MB"), { ...healthy, files: { ...healthy.files, hba } }))).toEqual(["db1", "db2"]);
  });

  it("postgresql.auto.conf over pgrep's settings: a standby's that point at its upstream are taken over (and the hand-made slot dropped after), elsewhere refused until --reset-auto-conf; the others named and left", () => {
    const streaming = [{ application_name: "db2", client_addr: "10.0.0.2", state: "streaming", sync_state: "async", sent_lsn: "0/3000000", replay_lsn: "0/3000000", lag_bytes: 0, replay_lag_s: null }];
    const slot = [{ name: "pgrep_db2", active: true, retained_bytes: 0, wal_status: "reserved" }, { name: "guide", active: true, retained_bytes: 0, wal_status: "reserved" }];
    const p = upToDate(primary);
    const P = { ...p, sql: { ...p.sql!, replication: streaming, slots: slot } };
    const standby = upToDate(runningHost(s, "db2", "7001", true));
    const auto = (conninfo: string) => ({ ...standby, files: { ...standby.files, autoConf: `# Do not edit this file manually!\nprimary_conninfo = '${conninfo}'\nprimary_slot_name = 'guide'\n` } });
    // pg_basebackup -R's settings, pointing at db1 (by its address, quoted as -R quotes): taken over without a flag.
    const byHand = auto("user=replicator password=''s3cret'' host=''10.0.0.1'' port=5432 sslmode=prefer");
    const adopted = planSetup(s, snapshot(15, P, byHand), none);
    expect(kinds(adopted, "db2")).toEqual(["reset-auto-conf", "control:reload", "wait-streaming", "drop-slot"]);
    const steps = adopted.phases.flatMap((ph) => ph.lanes).flatMap((l) => l.steps);
    expect(steps.find((x) => x.kind === "reset-auto-conf")?.why).toMatch(/they point at db1, the upstream the inventory names/);
    expect(steps.find((x) => x.kind === "drop-slot")).toMatchObject({ host: "db1", slot: "guide" });
    // Pointing elsewhere: refused, with the way out.
    expect(() => planSetup(s, snapshot(15, P, auto("user=replicator host=10.9.9.9 port=5432")), none)).toThrow(/db2: postgresql\.auto\.conf sets primary_conninfo, primary_slot_name over pgrep's settings, pointing at 10\.9\.9\.9 port 5432, not at db1 .* pass --reset-auto-conf/);
    expect(() => planSetup(s, snapshot(15, P, auto("user=replicator host=10.0.0.1 port=5433")), none)).toThrow(/pointing at 10\.0\.0\.1 port 5433, not at db1/);
    const reset = planSetup(s, snapshot(15, P, auto("host=10.9.9.9")), { ...none, resetAutoConf: true });
    expect(kinds(reset, "db2")).toEqual(["reset-auto-conf", "control:reload", "wait-streaming", "drop-slot"]);
    // On the primary: a setting of pgrep's set by ALTER SYSTEM is named and left; with the flag reset,
    // and a restart-only one then gets its restart.
    const altered = { ...P, files: { ...P.files, autoConf: "max_wal_senders = '20'\nwork_mem = '64MB'\n" } };
    const left = planSetup(s, snapshot(15, altered, standby), none);
    expect(kinds(left, "db1")).toEqual([]);
    expect(left.notes).toEqual(["db1: postgresql.auto.conf sets max_wal_senders over pgrep's settings, which win: left as they are (ALTER SYSTEM RESET them, or run setup with --reset-auto-conf)"]);
    expect(kinds(planSetup(s, snapshot(15, altered, standby), { ...none, resetAutoConf: true }), "db1")).toEqual(["reset-auto-conf", "control:reload", "restart-if-pending"]);
  });

  it("checks for a restart only when a setting that needs one changes, and names it", () => {
    const withSetting = (setting: string) => spec(15, "debian", `, settings: { ${setting} }`);
    const kinds = (sp: ClusterSpec) => {
      const plan = planSetup(sp, snapshot(15, upToDate(primary), upToDate(runningHost(sp, "db2", "7001", true))), none);
      return plan.phases.flatMap((ph) => ph.lanes).filter((l) => l.host === "db1").flatMap((l) => l.steps.map((x) => (x.kind === "restart-if-pending" ? `${x.kind}: ${x.why}` : x.kind)));
    };
    expect(kinds(withSetting("work_mem: 64MB"))).toEqual(["edit-file", "control", "slots"]);
    // No standby streams from it here, so it restarts in its own lane (rolling.test.ts has the rolled order).
    expect(kinds(withSetting("max_connections: 200"))).toEqual(["edit-file", "control", "restart-if-pending: max_connections only changes at a restart", "slots"]);
  });

  it("creates each standby's slot on the primary, and drops pgrep's unused slots (never an active one, never another tool's)", () => {
    const p = upToDate(primary);
    const slots = [
      { name: "pgrep_gone", active: false, retained_bytes: 1e9, wal_status: "reserved" },
      { name: "pgrep_busy", active: true, retained_bytes: 0, wal_status: "reserved" },
      { name: "barman", active: false, retained_bytes: 0, wal_status: "reserved" },
    ];
    const plan = planSetup(s, snapshot(15, { ...p, sql: { ...p.sql!, slots } }, upToDate(runningHost(s, "db2", "7001", true))), none);
    const step = plan.phases.flatMap((ph) => ph.lanes.flatMap((l) => l.steps)).find((x) => x.kind === "slots");
    expect(step).toMatchObject({ host: "db1", create: ["pgrep_db2"], drop: ["pgrep_gone"] });
  });

  it("refuses a standby whose data belongs to another cluster, and clones it with --force", () => {
    const other = runningHost(s, "db2", "9999", true);
    expect(() => planSetup(s, snapshot(15, primary, other), none)).toThrow(RefusedError);
    expect(() => planSetup(s, snapshot(15, primary, other), none)).toThrow(/db2: refusing to replace its data: .*another cluster \(system identifier 9999, the primary's is 7001\)/);
    const plan = planSetup(s, snapshot(15, primary, other), { force: new Set(["db2"]) });
    expect(kinds(plan, "db2")).toContain("clone");
    expect(kinds(plan, "db1")).not.toContain("create-cluster");
  });

  it("refuses a standby host that runs as a primary with the same system identifier (promoted)", () => {
    expect(() => planSetup(s, snapshot(15, primary, runningHost(s, "db2", "7001", false)), none)).toThrow(/db2: .*running as a primary/);
  });

  it("refuses a stopped standby copy that has no standby.signal (it may have been promoted)", () => {
    const stopped = { ...runningHost(s, "db2", "7001", false), running: false, sql: undefined };
    expect(() => planSetup(s, snapshot(15, primary, stopped), none)).toThrow(/db2: .*not configured as a standby/);
  });

  it("refuses when the inventory's primary is running as a standby", () => {
    expect(() => planSetup(s, snapshot(15, runningHost(s, "db1", "7001", true), runningHost(s, "db2", "7001", true)), none)).toThrow(/db1: the inventory says primary, but this server is running as a standby/);
  });

  it("refuses a non-empty data directory that holds no cluster", () => {
    const junk = { ...emptyHost(s, "db1"), dataDirExists: true, dataDirEntries: 3 };
    expect(() => planSetup(s, snapshot(15, junk, emptyHost(s, "db2")), none)).toThrow(/db1: .* is not empty but holds no PostgreSQL cluster/);
  });
});

/** The host as it is after a successful setup: its files are what the plan would write. */
function upToDate(h: ReturnType<typeof runningHost>): ReturnType<typeof runningHost> {
  const s = spec(15);
  const fresh = planSetup(s, snapshot(15, emptyHost(s, "db1"), emptyHost(s, "db2")), none);
  const f = files(fresh, h.name);
  return { ...h, files: { ...h.files, settings: f[h.layout.settingsFile]!, hba: f[h.layout.hbaFile]! } };
}
