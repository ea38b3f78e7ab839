import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, pgrep } from "../cli.js";
import { binDirIn, MAJORS, missingBuilds, PG_CACHE } from "../rig/postgres-builds.js";
import { Rig } from "../rig/rig.js";

// Real servers of every supported major (10–18) on two rig hosts, in the generic layout: the primary
// on "pa", a standby on "pb" cloned with the backup API + rsync (and with pg_basebackup where a matching
// one exists here). Each major gets its own data directories and port.

let rig: Rig;

interface Options {
  major: number;
  method?: "rsync" | "basebackup";
  tag?: string;
  maxRate?: string;
  /** A third host, pc, streaming from pb (cascading). */
  cascade?: boolean;
  promote?: "auto" | "trigger_file" | "pg_promote" | "pg_ctl";
}

/** Every promotion method, each on the majors that have it: pg_ctl, trigger_file (≤11 and 12–15), pg_promote (12+). */
const PROMOTE_BY_MAJOR = { 10: "auto", 11: "trigger_file", 12: "trigger_file", 13: "pg_promote", 14: "trigger_file", 15: "pg_promote", 16: "pg_promote", 17: "auto", 18: "pg_promote" } as const;
const LABEL = { pg_ctl: "pg_ctl promote", trigger_file: "the trigger file", pg_promote: "pg_promote()" } as const;

const port = (o: Options) => 5400 + o.major + (o.tag ? (o.tag === "f" ? 40 : 20) : 0);
const dataDir = (o: Options) => `/srv/pg${o.major}${o.tag ?? ""}/data`;

function inventory(o: Options): string {
  const host = (name: string, role: string) => {
    const h = rig.host(name);
    return `  - name: ${name}\n    address: ${name}\n    role: ${role}\n    ssh: { host: ${h.sshHost}, port: ${h.sshPort} }`;
  };
  const file = join(rig.dir, `m${o.major}${o.tag ?? ""}.yml`);
  writeFileSync(
    file,
    `cluster: m${o.major}${o.tag ?? ""}
postgres:
  major: ${o.major}
  layout: generic
  data_dir: ${dataDir(o)}
  bin_dir: ${binDirIn(o.major)}
  port: ${port(o)}
ssh: { user: root, identity_file: ${rig.keyFile}, known_hosts: ${rig.knownHostsFile} }
clone: { method: ${o.method ?? "rsync"}${o.maxRate ? `, max_rate: ${o.maxRate}` : ""} }
promote: { method: ${o.promote ?? "auto"} }
hosts:
${host("pa", "primary")}
${host("pb", "standby")}
${o.cascade ? `${host("pc", "standby")}
    upstream: pb
` : ""}`,
  );
  return file;
}

const sql = (host: string, o: Options, q: string) => rig.psql(host, q, port(o), "/tmp");

async function waitReplayed(o: Options): Promise<void> {
  const target = await sql("pa", o, "SELECT pg_current_wal_lsn()");
  const deadline = Date.now() + 30_000;
  while ((await sql("pb", o, `SELECT pg_last_wal_replay_lsn() >= '${target}'::pg_lsn`)) !== "t") {
    if (Date.now() > deadline) throw new Error(`pb did not replay ${target}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopBoth(o: Options): Promise<void> {
  for (const h of ["pa", "pb", "pc"]) await rig.sh(h, `runuser -u postgres -- ${binDirIn(o.major)}/pg_ctl -D ${dataDir(o)} -m fast stop >/dev/null 2>&1 || true`);
}

/** A standby of this major streams, has the primary's rows, refuses writes and carries the right files. */
async function provesStandby(o: Options): Promise<void> {
  expect(await sql("pa", o, "SHOW server_version_num")).toMatch(new RegExp(`^${o.major}`));
  await sql("pa", o, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)");
  await waitReplayed(o);
  expect(await sql("pb", o, "SELECT count(*) FROM t")).toBe("1000");
  expect(await sql("pb", o, "SELECT pg_is_in_recovery()")).toBe("t");
  await expect(sql("pb", o, "INSERT INTO t VALUES (0)")).rejects.toThrow(/read-only transaction/);
  expect(await sql("pa", o, "SELECT application_name || ':' || state FROM pg_stat_replication")).toBe("pb:streaming");
  const files = (await rig.sh("pb", `ls ${dataDir(o)}`)).split("\n");
  if (o.major <= 11) {
    expect(files).toContain("recovery.conf");
    expect(files).not.toContain("standby.signal");
  } else {
    expect(files).toContain("standby.signal");
    expect(files).not.toContain("recovery.conf");
  }
  if (o.major >= 13) {
    expect(await rig.sh("pb", `grep -c wal_keep_segments ${dataDir(o)}/pgrep.conf || true`)).toMatch(/^0/);
    expect(await sql("pb", o, "SHOW wal_keep_size")).toBe("1GB");
  } else expect(await sql("pb", o, "SHOW wal_keep_segments")).toBe("64");
}

/**
 * A standby copy in progress: the cluster is set up, the primary gets ~50 MB, the standby's data is wiped,
 * and a bandwidth-limited setup runs until rsync is seen copying on the standby.
 */
async function slowCopyInProgress(o: Options): Promise<{ running: ReturnType<typeof execa> }> {
  const first = await pgrep(["setup", "-i", inventory(o)]);
  expect(first.exitCode, first.all).toBe(0);
  await sql("pa", o, "CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 40000) g");
  await rig.sh("pb", `runuser -u postgres -- ${binDirIn(o.major)}/pg_ctl -D ${dataDir(o)} -m fast stop >/dev/null; rm -rf ${dataDir(o)}/*`);
  const running = execa("node", [CLI, "setup", "-i", inventory({ ...o, maxRate: "1M" })], { reject: false });
  await rig.sh("pb", "for i in $(seq 1 200); do pgrep -x rsync >/dev/null && exit 0; sleep 0.1; done; exit 1");
  // Wrapped: a subprocess is itself awaitable, and must not be awaited here.
  return { running };
}

/** After a copy was cut short: no backup session, no temporary key, no half-made copy. */
async function nothingLeftBehind(o: Options): Promise<void> {
  expect(await sql("pa", o, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup'")).toBe("0");
  expect(await rig.sh("pa", "cat /var/lib/postgresql/.ssh/authorized_keys")).not.toMatch(/pgrep-clone/);
  expect(await rig.sh("pb", `ls -A ${dataDir(o)} | wc -l`)).toBe("0\n");
}

/** The next setup converges: the standby streams and has the primary's rows. */
async function nextSetupConverges(o: Options): Promise<void> {
  const again = await pgrep(["setup", "-i", inventory(o)]);
  expect(again.exitCode, again.all).toBe(0);
  await waitReplayed(o);
  expect(await sql("pb", o, "SELECT count(*) FROM big")).toBe("40000");
  await stopBoth(o);
}

const missing = missingBuilds();

describe.skipIf(missing.length > 0)("every major, on real servers", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pa", "pb", "pc"], [{ source: PG_CACHE, target: "/opt/pg" }]);
  });
  afterAll(async () => {
    await rig?.stop();
  });

  for (const major of MAJORS) {
    it(`PostgreSQL ${major}: rsync clone streams with the right standby mechanism; promotion by ${PROMOTE_BY_MAJOR[major]}`, async () => {
      const o: Options = { major, promote: PROMOTE_BY_MAJOR[major] };
      const r = await pgrep(["setup", "-i", inventory(o)]);
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/clone from pa with the backup API and rsync/);
      expect(r.stderr).toMatch(/\[pb\] rsync from pa: \d+% of [\d.]+ MB/);
      await provesStandby(o);
      // The temporary key is gone from the primary, and no backup is left running.
      expect(await rig.sh("pa", "cat /var/lib/postgresql/.ssh/authorized_keys 2>/dev/null || true")).not.toMatch(/pgrep-clone/);
      expect(await sql("pa", o, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup'")).toBe("0");
      const again = await pgrep(["setup", "-i", inventory(o)]);
      expect(again.stderr).toMatch(/Nothing to change/);

      const file = join(rig.dir, `m${major}.yml`);
      const p = await pgrep(["promote", "pb", "-i", file, "--fence"]);
      expect(p.exitCode, p.all).toBe(0);
      const expected = o.promote === "auto" ? (major <= 11 ? "pg_ctl" : "pg_promote") : o.promote!;
      expect(p.stderr).toMatch(new RegExp(`\\[pb\\] ✓ promoted with ${LABEL[expected].replace(/[()]/g, "\\$&")}: accepts writes on timeline 2`));
      await sql("pb", o, "INSERT INTO t VALUES (1001)");
      expect(await sql("pb", o, "SELECT count(*) FROM t")).toBe("1001");
      await stopBoth(o);
    });
  }

  for (const major of [10, 18]) {
    it(`PostgreSQL ${major}: a cascading standby copied by rsync from a standby (backup API on a standby), streaming from it`, async () => {
      const o: Options = { major, tag: "c", cascade: true };
      const r = await pgrep(["setup", "-i", inventory(o)]);
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/\[pc\] rsync from pb: /);
      await sql("pa", o, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 300)");
      const target = await sql("pa", o, "SELECT pg_current_wal_lsn()");
      const deadline = Date.now() + 30_000;
      while ((await sql("pc", o, `SELECT pg_last_wal_replay_lsn() >= '${target}'::pg_lsn`)) !== "t") {
        if (Date.now() > deadline) throw new Error("pc did not replay");
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(await sql("pc", o, "SELECT count(*) FROM t")).toBe("300");
      expect(await sql("pb", o, "SELECT application_name || ':' || state FROM pg_stat_replication")).toBe("pc:streaming");
      expect(await sql("pb", o, "SELECT slot_name FROM pg_replication_slots WHERE active")).toBe("pgrep_pc");
      expect(await sql("pb", o, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup'")).toBe("0");
      await stopBoth(o);
    });
  }

  it("PostgreSQL 16 refuses trigger-file promotion in the inventory, before contacting any host", async () => {
    const r = await pgrep(["setup", "-i", inventory({ major: 16, tag: "t", promote: "trigger_file" })]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/promote\.method: PostgreSQL 16 has no promotion trigger file \(promote_trigger_file was removed in 16/);
  });

  it("PostgreSQL 15: pg_basebackup clone in the generic layout", async () => {
    const o = { major: 15, method: "basebackup" as const, tag: "b" };
    const r = await pgrep(["setup", "-i", inventory(o)]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/clone from pa with pg_basebackup/);
    await provesStandby(o);
    await stopBoth(o);
  });

  it("PostgreSQL 16 without a pg_basebackup of 16: refused before anything is touched, with the rsync hint", async () => {
    const o = { major: 16, method: "basebackup" as const, tag: "b" };
    const r = await pgrep(["setup", "-i", inventory(o)]);
    expect(r.exitCode, r.all).toBe(4);
    expect(r.stderr).toMatch(/pb: no pg_basebackup of PostgreSQL 16 on this host .*use clone: \{ method: rsync \}/);
    expect(await rig.sh("pa", `test -e ${dataDir(o)} && echo exists || echo absent`)).toBe("absent\n");
    expect(await rig.sh("pb", `test -e ${dataDir(o)} && echo exists || echo absent`)).toBe("absent\n");
  });

  it("a copy killed mid-way: the backup is stopped, the key revoked, the copy removed; the next setup succeeds", async () => {
    const o: Options = { major: 17, tag: "f" };
    const { running } = await slowCopyInProgress(o);
    expect(await sql("pa", o, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup'")).toBe("1");
    await rig.sh("pb", "pkill -x rsync");
    const r = await running;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toMatch(/pb: rsync of the data directory failed/);
    await nothingLeftBehind(o);
    expect(await rig.sh("pa", `test -e ${dataDir(o)}/backup_label && echo left || echo none`)).toBe("none\n");
    await nextSetupConverges(o);
  });

  it("Ctrl-C during a copy: the backup is ended, the key revoked, the copy removed; exit 130; the next setup succeeds", async () => {
    const o: Options = { major: 16, tag: "i" };
    const { running } = await slowCopyInProgress(o);
    running.kill("SIGINT");
    const r = await running;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(130);
    expect(r.stderr).toMatch(/interrupted \(SIGINT\); cleaning up/);
    await nothingLeftBehind(o);
    await nextSetupConverges(o);
  });
});
