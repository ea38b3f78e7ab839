import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, pgrep } from "../cli.js";
import { dryRun } from "../rig/dry-run.js";
import { binDirIn, MAJORS, missingBuilds, PG_CACHE } from "../rig/postgres-builds.js";
import { Rig } from "../rig/rig.js";

// Real servers of every supported major (10–18) on three rig hosts, in the generic layout. For each major
// one chain: standbys copied with the backup API + rsync while a writer runs (and checked: contents,
// amcheck, checksums), a switchover, a primary whose PostgreSQL alone crashed, one that went with its host,
// and rejoins — pg_rewind on 15 (Debian's binaries; the npm builds of the other majors have none),
// otherwise refused first and then a copy. Each major gets its own data directories and port; the other
// tests (cascades, pg_basebackup, copies cut short) stand alone.

let rig: Rig;

interface Options {
  major: number;
  method?: "rsync" | "basebackup";
  tag?: string;
  maxRate?: string;
  /** A third host, pc, streaming from pb (cascading). */
  cascade?: boolean;
  promote?: "auto" | "trigger_file" | "pg_promote" | "pg_ctl";
  /** The hosts in the inventory (default pa and pb; pa is the primary). */
  hosts?: string[];
  /** Binaries other than the npm build (Debian's 15, which has pg_rewind). */
  bin?: string;
  file?: string;
}

/** Every promotion method, each on the majors that have it: pg_ctl, trigger_file (≤11 and 12–15), pg_promote (12+). */
const PROMOTE_BY_MAJOR = { 10: "auto", 11: "trigger_file", 12: "trigger_file", 13: "pg_promote", 14: "pg_ctl", 15: "pg_promote", 16: "pg_promote", 17: "auto", 18: "pg_promote" } as const;
const LABEL = { pg_ctl: "pg_ctl promote", trigger_file: "the trigger file", pg_promote: "pg_promote()" } as const;

const port = (o: Options) => 5400 + o.major + (o.tag ? (o.tag === "f" ? 40 : 20) : 0);
const dataDir = (o: Options) => `/srv/pg${o.major}${o.tag ?? ""}/data`;
const bin = (o: Options) => o.bin ?? binDirIn(o.major);
/** The cluster's place on each host, for the before/after check of a dry run. */
const at = (o: Options) => ({ dataDir: dataDir(o), port: port(o), socketDir: "/tmp" });
/**
 * The majors whose role-change dry runs are checked before/after (each costs seconds): recovery.conf (10),
 * signal files (12), Debian's binaries with pg_rewind (15), the newest (18). setup's runs on every major.
 */
const DRY_RUN_MAJORS = [10, 12, 15, 18];

function inventory(o: Options): string {
  const host = (name: string, role: string) => {
    const h = rig.host(name);
    return `  - name: ${name}\n    address: ${name}\n    role: ${role}\n    ssh: { host: ${h.sshHost}, port: ${h.sshPort} }`;
  };
  const file = join(rig.dir, o.file ?? `m${o.major}${o.tag ?? ""}.yml`);
  const names = o.hosts ?? ["pa", "pb"];
  writeFileSync(
    file,
    `cluster: m${o.major}${o.tag ?? ""}
postgres:
  major: ${o.major}
  layout: generic
  data_dir: ${dataDir(o)}
  bin_dir: ${bin(o)}
  port: ${port(o)}
ssh: { user: root, identity_file: ${rig.keyFile}, known_hosts: ${rig.knownHostsFile} }
clone: { method: ${o.method ?? "rsync"}${o.maxRate ? `, max_rate: ${o.maxRate}` : ""} }
promote: { method: ${o.promote ?? "auto"} }
hosts:
${names.map((n) => host(n, n === "pa" ? "primary" : "standby")).join("\n")}
${o.cascade ? `${host("pc", "standby")}
    upstream: pb
` : ""}`,
  );
  return file;
}

const sql = (host: string, o: Options, q: string) => rig.psql(host, q, port(o), "/tmp");

const waitReplayed = (o: Options, from = "pa", to = "pb") => rig.waitReplayed(from, to, 30_000, port(o), "/tmp");

const pgctl = (h: string, o: Options, args: string) => rig.sh(h, `runuser -u postgres -- ${bin(o)}/pg_ctl -D ${dataDir(o)} ${args}`);

async function stopBoth(o: Options): Promise<void> {
  for (const h of ["pa", "pb", "pc"]) await pgctl(h, o, "-m fast stop >/dev/null 2>&1 || true");
}

/** Each user table's row count and the md5 of its rows in order: equal on every host once replay caught up. */
const contents = (h: string, o: Options) =>
  sql(
    h,
    o,
    `SELECT string_agg(relname || ':' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) || '' '' || coalesce(md5(string_agg(x::text, '','' ORDER BY x::text)), '''') AS c FROM %s x', oid::regclass), false, true, '')))[1]::text, ' ' ORDER BY relname) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`,
  );

/** On a standby: every btree index checked against its heap (amcheck), and no page failed its checksum. */
async function intact(h: string, o: Options): Promise<void> {
  const heapall = o.major >= 11 ? ", true" : "";
  const checked = await sql(h, o, `SELECT count(bt_index_check(c.oid${heapall})) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace`);
  expect(Number(checked)).toBeGreaterThan(0);
  expect(await sql(h, o, "SHOW data_checksums")).toBe("on");
  if (o.major >= 12) expect(await sql(h, o, "SELECT coalesce(sum(checksum_failures), 0) FROM pg_stat_database")).toBe("0");
}

/** A standby of this major streams, refuses writes and carries the right files. */
async function provesStandby(o: Options, h = "pb"): Promise<void> {
  expect(await sql(h, o, "SELECT pg_is_in_recovery()")).toBe("t");
  await expect(sql(h, o, "INSERT INTO t VALUES (0)")).rejects.toThrow(/read-only transaction/);
  const files = (await rig.sh(h, `ls ${dataDir(o)}`)).split("\n");
  if (o.major <= 11) {
    expect(files).toContain("recovery.conf");
    expect(files).not.toContain("standby.signal");
  } else {
    expect(files).toContain("standby.signal");
    expect(files).not.toContain("recovery.conf");
  }
  if (o.major >= 13) {
    expect(await rig.sh(h, `grep -c wal_keep_segments ${dataDir(o)}/pgrep.conf || true`)).toMatch(/^0/);
    expect(await sql(h, o, "SHOW wal_keep_size")).toBe("1GB");
  } else expect(await sql(h, o, "SHOW wal_keep_segments")).toBe("64");
}

/** Inserts on `h` from a loop on that host until stopped; the rows it had acknowledged are counted there. */
async function startWriter(h: string, o: Options): Promise<{ stop: () => Promise<number> }> {
  await sql(h, o, "CREATE TABLE IF NOT EXISTS w (id serial PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)");
  const insert = `runuser -u postgres -- psql -XAtq -h /tmp -p ${port(o)} -d postgres -c "INSERT INTO w (pad) SELECT md5(g::text) FROM generate_series(1, 50) g"`;
  await rig.sh(h, `rm -f /tmp/w.stop; echo 0 > /tmp/w.acked; (n=0; while [ ! -e /tmp/w.stop ]; do ${insert} >/dev/null 2>&1 && n=$((n+50)) && echo $n > /tmp/w.acked; done; touch /tmp/w.done) >/dev/null 2>&1 &`);
  return {
    stop: async () => {
      await rig.sh(h, "rm -f /tmp/w.done; touch /tmp/w.stop; for i in $(seq 1 100); do [ -e /tmp/w.done ] && break; sleep 0.1; done");
      return Number((await rig.sh(h, "cat /tmp/w.acked")).trim());
    },
  };
}

/** pg_rewind runs only where it exists (Debian's 15): the npm builds of the other majors have none. */
const rejoinArgs = (o: Options) => (o.bin ? [] : ["--allow-reclone"]);

/**
 * A standby copy in progress: the cluster is set up, the primary gets ~50 MB, the standby's data is wiped,
 * and a bandwidth-limited setup runs until rsync is seen copying on the standby.
 */
async function slowCopyInProgress(o: Options, maxRate = "1M", over: "nothing" | "an old copy" = "nothing"): Promise<{ running: ReturnType<typeof execa> }> {
  const first = await pgrep(["setup", "-i", inventory(o)]);
  expect(first.exitCode, first.all).toBe(0);
  const stop = `runuser -u postgres -- ${binDirIn(o.major)}/pg_ctl -D ${dataDir(o)} -m fast stop >/dev/null`;
  if (over === "an old copy") {
    // The standby's whole copy, older than the primary, and a copy of it marked as not finished.
    await rig.sh("pb", stop);
    await sql("pa", o, "CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 40000) g");
    await rig.sh("pb", `od -An -t u8 -N8 ${dataDir(o)}/global/pg_control | tr -d ' ' > ${dataDir(o)}.pgrep-copy`);
  } else {
    await sql("pa", o, "CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 40000) g");
    await rig.sh("pb", `${stop}; rm -rf ${dataDir(o)}/*`);
  }
  const running = execa("node", [CLI, "setup", "-i", inventory({ ...o, maxRate })], { reject: false });
  await rig.sh("pb", "for i in $(seq 1 200); do pgrep -x rsync >/dev/null && exit 0; sleep 0.1; done; exit 1");
  // Some of the copy has arrived: what is cut short then is a half-made copy, not an empty directory.
  if (over === "nothing") await rig.waitFor("the copy to begin arriving on pb", async () => (await copiedBytes(o)) >= 2 * 2 ** 20);
  // Wrapped: a subprocess is itself awaitable, and must not be awaited here.
  return { running };
}

/**
 * After a copy was cut short: no backup session, no temporary key, no rsync; the half-made copy is kept
 * for the next setup to continue, marked as pgrep's, and without a control file nothing can start it.
 */
async function nothingLeftBehind(o: Options): Promise<void> {
  expect(await sql("pa", o, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup'")).toBe("0");
  expect(await rig.sh("pa", "cat /var/lib/postgresql/.ssh/authorized_keys")).not.toMatch(/pgrep-clone/);
  await rig.waitFor("rsync on pb to end", async () => (await rig.sh("pb", "pgrep -x rsync || true")).trim() === "");
  expect(await rig.sh("pb", `test -e ${dataDir(o)}.pgrep-copy && echo marked; test -e ${dataDir(o)}/global/pg_control && echo startable; ls -A ${dataDir(o)} | wc -l`)).toMatch(/^marked\n[1-9]\d*\n$/);
  const start = await rig.host("pb").container.exec(["runuser", "-u", "postgres", "--", `${bin(o)}/pg_ctl`, "-D", dataDir(o), "-o", `-p ${port(o)}`, "-w", "-t", "5", "start"]);
  expect(start.exitCode, start.output).not.toBe(0);
}

const copiedBytes = async (o: Options) => Number((await rig.sh("pb", `du -sb ${dataDir(o)} 2>/dev/null | cut -f1`)).trim() || 0);

/** The next setup continues the copy and converges: the standby streams and has the primary's rows. */
async function nextSetupConverges(o: Options): Promise<void> {
  const again = await pgrep(["setup", "-i", inventory(o)]);
  expect(again.exitCode, again.all).toBe(0);
  expect(again.stderr).toMatch(/\[pb\] continuing the copy of pa left unfinished here/);
  await waitReplayed(o);
  expect(await sql("pb", o, "SELECT count(*) FROM big")).toBe("40000");
  await stopBoth(o);
}

describe("every major, on real servers", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pa", "pb", "pc"], [{ source: PG_CACHE, target: "/opt/pg" }]);
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("has a server build of every supported major (a missing one fails the suite, never skips it)", () => {
    expect(missingBuilds(), "run bash test/rig/prepare.sh").toEqual([]);
  });

  for (const major of MAJORS) {
    it(`PostgreSQL ${major}: copies under writes are exact; switchover, a crashed and a lost primary, rejoin; every standby follows each new timeline`, async () => {
      const o: Options = { major, promote: PROMOTE_BY_MAJOR[major], hosts: ["pa", "pb", "pc"], ...(major === 15 ? { bin: "/usr/lib/postgresql/15/bin" } : {}) };
      const label = LABEL[o.promote === "auto" ? (major <= 11 ? "pg_ctl" : "pg_promote") : o.promote!];
      // The primary alone first; then both standbys are copied while a writer runs on it.
      const alone = inventory({ ...o, hosts: ["pa"], file: `m${major}-alone.yml` });
      const first = await pgrep(["setup", "-i", alone]);
      expect(first.exitCode, first.all).toBe(0);
      const file = inventory(o);
      cpSync(alone.replace(/\.yml$/, ".state"), file.replace(/\.yml$/, ".state"), { recursive: true });
      await sql("pa", o, "CREATE EXTENSION amcheck; CREATE TABLE t (id int PRIMARY KEY, src text) WITH (autovacuum_enabled = false); INSERT INTO t SELECT g, 'pa' FROM generate_series(1, 1000) g");
      const writer = await startWriter("pa", o);
      const r = await pgrep(["setup", "-i", file]);
      const acked = await writer.stop();
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/\[pb\] rsync from pa: \d+% of [\d.]+ MB/);
      expect(acked).toBeGreaterThan(0);
      await waitReplayed(o, "pa", "pb");
      await waitReplayed(o, "pa", "pc");
      const want = await contents("pa", o);
      expect(want).toMatch(new RegExp(`w:${acked} `));
      expect(await contents("pb", o)).toBe(want);
      expect(await contents("pc", o)).toBe(want);
      for (const h of ["pb", "pc"]) {
        await provesStandby(o, h);
        await intact(h, o);
      }
      expect(await sql("pa", o, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup'")).toBe("0");
      // Both copies' keys are gone from pa, though the two copies edited its authorized_keys at once.
      expect(await rig.sh("pa", "cat /var/lib/postgresql/.ssh/authorized_keys 2>/dev/null; true")).not.toMatch(/pgrep-clone/);

      // A switchover: pa follows pb, and so does pc, onto timeline 2. Its dry run first changes nothing (as do promote's and rejoin's below).
      if (DRY_RUN_MAJORS.includes(major)) expect((await dryRun(rig, ["switchover", "pb", "-i", file], o.hosts, at(o))).stdout).toMatch(/\[pb\] promote with /);
      const sw = await pgrep(["switchover", "pb", "-i", file]);
      expect(sw.exitCode, sw.all).toBe(0);
      expect(sw.stderr).toMatch(new RegExp(`\\[pb\\] ✓ promoted with ${label.replace(/[()]/g, "\\$&")}: accepts writes on timeline 2`));
      await sql("pb", o, "INSERT INTO t VALUES (1001, 'pb')");
      await waitReplayed(o, "pb", "pa");
      await waitReplayed(o, "pb", "pc");
      expect(await sql("pc", o, "SELECT count(*) FROM t")).toBe("1001");

      // pb's PostgreSQL alone crashes, holding a row no standby has: pc is promoted, pa follows it. With a
      // pg_waldump of the major (Debian's 15) what pb wrote is salvaged into pc first; without one pb waits.
      await pgctl("pa", o, "-m fast stop >/dev/null");
      await pgctl("pc", o, "-m fast stop >/dev/null");
      await sql("pb", o, "INSERT INTO t VALUES (1002, 'lost')");
      await pgctl("pb", o, "-m immediate stop >/dev/null");
      for (const h of ["pa", "pc"]) await pgctl(h, o, `-l ${dataDir(o)}/pgrep-server.log -w start >/dev/null`);
      if (DRY_RUN_MAJORS.includes(major)) expect((await dryRun(rig, ["promote", "pc", "-i", file], o.hosts, at(o))).exitCode).toBe(0);
      const p = await pgrep(["promote", "pc", "-i", file]);
      expect(p.exitCode, p.all).toBe(0);
      expect(p.stdout).toMatch(/pa\s+standby\s+streaming\s+pc\s+3 /);
      const salvaged = !!o.bin;
      if (salvaged) {
        expect(p.stderr).toMatch(/\[pc\] ✓ salvaged: it has replayed pb's WAL up to/);
        expect(await sql("pc", o, "SELECT count(*) FROM t WHERE src = 'lost'")).toBe("1");
        // It follows at once; or, when the crash tore a record at the end of its WAL, it waits for a rewind.
        expect(p.stdout).toMatch(/pb\s+standby\s+(streaming\s+pc|needs rejoin)/);
      } else {
        expect(p.stderr).toMatch(new RegExp(`no /opt/pg/${major}/native/bin/pg_waldump`));
        expect(p.stdout).toMatch(/pb\s+standby\s+needs rejoin/);
      }
      const waits = /pb\s+standby\s+needs rejoin/.test(p.stdout);
      // Rejoin: pg_rewind where it can run; otherwise said before anything is touched, and a copy on request.
      if (waits && rejoinArgs(o).length) {
        const refused = await pgrep(["rejoin", "pb", "-i", file]);
        expect(refused.exitCode, refused.all).toBe(4);
        expect(refused.stderr).toMatch(major === 10 ? /pg_rewind on PostgreSQL 10 needs a superuser on the source/ : new RegExp(`there is no pg_rewind of PostgreSQL ${major} on pb`));
        expect(refused.stderr).toMatch(/hint: pass --allow-reclone/);
      }
      if (waits) {
        if (DRY_RUN_MAJORS.includes(major)) expect((await dryRun(rig, ["rejoin", "pb", "-i", file, ...rejoinArgs(o)], o.hosts, at(o))).exitCode).toBe(0);
        const j = await pgrep(["rejoin", "pb", "-i", file, ...rejoinArgs(o)]);
        expect(j.exitCode, j.all).toBe(0);
        expect(j.stderr).toMatch(rejoinArgs(o).length ? /\[pb\] ✓ cloned pc/ : /\[pb\] ✓ rewound/);
        expect(j.stdout).toMatch(/pb\s+standby\s+streaming\s+pc/);
      }
      await waitReplayed(o, "pc", "pb");
      expect(await sql("pb", o, "SELECT count(*) FROM t WHERE src = 'lost'")).toBe(salvaged ? "1" : "0");
      expect(await contents("pb", o)).toBe(await contents("pc", o));

      // pc goes with its host (server killed, sshd gone): pa is promoted, pb follows it onto timeline 4.
      await pgctl("pc", o, "-m immediate stop >/dev/null");
      await rig.stopSshd("pc");
      const d = await pgrep(["promote", "pa", "-i", file, "--old-primary-is-down"]);
      expect(d.exitCode, d.all).toBe(0);
      expect(d.stdout).toMatch(/pb\s+standby\s+streaming\s+pa\s+4 /);
      await rig.startSshd("pc");
      const back = await pgrep(["rejoin", "pc", "-i", file, ...rejoinArgs(o)]);
      expect(back.exitCode, back.all).toBe(0);
      expect(back.stdout).toMatch(/pc\s+standby\s+streaming\s+pa/);
      await sql("pa", o, "INSERT INTO t VALUES (1003, 'pa')");
      await waitReplayed(o, "pa", "pb");
      await waitReplayed(o, "pa", "pc");
      const now = await contents("pa", o);
      expect({ pb: await contents("pb", o), pc: await contents("pc", o) }).toEqual({ pb: now, pc: now });
      expect((await dryRun(rig, ["setup", "-i", file], o.hosts, at(o))).stdout).toMatch(/^Nothing to change/);
      await stopBoth(o);
    });
  }

  for (const major of [11, 17]) {
    it(`PostgreSQL ${major}: a standby held behind, then the primary lost: promoting it is refused, failover picks the other, it follows on the new timeline`, async () => {
      const o: Options = { major, tag: "h", hosts: ["pa", "pb", "pc"] };
      const file = inventory(o);
      const r = await pgrep(["setup", "-i", file]);
      expect(r.exitCode, r.all).toBe(0);
      await sql("pa", o, "CREATE TABLE acked (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)");
      // pc's WAL receiver frozen while pa commits ~40 MB: more than its socket can hold.
      await rig.holdReceiver("pc");
      await sql("pa", o, "INSERT INTO acked SELECT g, md5(g::text) FROM generate_series(1, 300000) g");
      await waitReplayed(o, "pa", "pb");
      // pa goes with its host: its server killed, its sshd gone.
      await pgctl("pa", o, "-m immediate stop >/dev/null");
      await rig.stopSshd("pa");
      try {
        await rig.releaseReceiver("pc");
        const refused = await pgrep(["promote", "pc", "-i", file, "--old-primary-is-down"]);
        expect(refused.exitCode, refused.all).toBe(4);
        expect(refused.stderr).toMatch(/^pgrep: pb has received [\d.]+ MB \(\d+ bytes\) more WAL than pc; promoting pc would lose it/m);
        const f = await pgrep(["failover", "-i", file, "--old-primary-is-down"]);
        expect(f.exitCode, f.all).toBe(0);
        expect(f.stderr).toMatch(/→ pb .*chosen: received the most WAL/);
        expect(f.stdout).toMatch(/pc\s+standby\s+streaming\s+pb\s+2 /);
        await rig.waitFor("pc streaming on timeline 2", async () => (await sql("pc", o, "SELECT coalesce((SELECT status || ' ' || received_tli FROM pg_stat_wal_receiver), '')")) === "streaming 2");
        await waitReplayed(o, "pb", "pc");
        expect(await sql("pb", o, "SELECT count(*) FROM acked")).toBe("300000");
        expect(await sql("pc", o, "SELECT count(*) FROM acked")).toBe("300000");
      } finally {
        await rig.releaseReceiver("pc");
        await rig.startSshd("pa");
      }
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
      await waitReplayed(o, "pa", "pc");
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
    await sql("pa", o, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)");
    await waitReplayed(o);
    expect(await contents("pb", o)).toBe(await contents("pa", o));
    await provesStandby(o);
    await stopBoth(o);
  });

  it("PostgreSQL 11: a pair built by hand (pg_basebackup, recovery.conf) is adopted without a copy, its own rules and settings kept", async () => {
    const o: Options = { major: 11, tag: "a" };
    const [d, b, p] = [dataDir(o), bin(o), port(o)];
    const parent = d.replace(/\/data$/, "");
    const start = `runuser -u postgres -- ${b}/pg_ctl -D ${d} -l ${parent}/log -w start >/dev/null`;
    await rig.sh(
      "pa",
      [
        `mkdir -p ${parent} && chown postgres: ${parent}`,
        `runuser -u postgres -- ${b}/initdb -D ${d} -A trust >/dev/null`,
        `printf "%s\\n" "listen_addresses = '*'" "port = ${p}" "unix_socket_directories = '/tmp'" "max_wal_senders = 5" "work_mem = '8MB'   # set by hand" >> ${d}/postgresql.conf`,
        `echo "host replication repl_hand all md5   # the guide's rule" >> ${d}/pg_hba.conf`,
        start,
        `runuser -u postgres -- psql -h /tmp -p ${p} -d postgres -qXc "CREATE ROLE repl_hand REPLICATION LOGIN PASSWORD 'by-hand'"`,
      ].join(" && "),
    );
    await rig.sh(
      "pb",
      [
        `mkdir -p ${parent} && chown postgres: ${parent}`,
        // The copy by Debian's pg_basebackup (the 11 build has none; its -R would write options 11's libpq
        // does not know), and recovery.conf written by hand, as the classic guides do.
        `PGPASSWORD=by-hand runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_basebackup -h pa -p ${p} -U repl_hand -D ${d} -X stream -c fast`,
        `printf "%s\\n" "standby_mode = 'on'" "primary_conninfo = 'host=pa port=${p} user=repl_hand password=by-hand'" > ${d}/recovery.conf`,
        `chown postgres: ${d}/recovery.conf && touch ${d}/made-by-hand`,
        start,
      ].join(" && "),
    );
    await rig.waitFor("the hand-made standby to stream", async () => (await sql("pa", o, "SELECT count(*) FROM pg_stat_replication")) === "1");
    const r = await pgrep(["setup", "-i", inventory(o)]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).not.toMatch(/clone from/);
    expect(r.stderr).toMatch(/\[pa\] ✓ restarted for .*wal_log_hints/);
    expect(await rig.sh("pb", `ls ${d}/made-by-hand && grep -c "application_name=pb" ${d}/recovery.conf`)).toMatch(/made-by-hand\n1\n/);
    expect(await sql("pa", o, "SELECT application_name || ':' || state FROM pg_stat_replication")).toBe("pb:streaming");
    expect(await sql("pa", o, "SHOW work_mem")).toBe("8MB");
    expect(await rig.sh("pa", `grep -c "# the guide's rule" ${d}/pg_hba.conf`)).toBe("1\n");
    expect((await pgrep(["setup", "-i", inventory(o)])).stderr).toMatch(/Nothing to change/);
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

  it("a copy killed mid-way: the backup is stopped, the key revoked, the copy kept and unstartable; the next setup continues it", async () => {
    const o: Options = { major: 17, tag: "f" };
    const { running } = await slowCopyInProgress(o);
    expect(await sql("pa", o, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgrep_backup'")).toBe("1");
    await rig.sh("pb", "pkill -x rsync");
    const r = await running;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toMatch(/pb: rsync of the data directory failed/);
    await nothingLeftBehind(o);
    await nextSetupConverges(o);
  });

  it("an rsync copy cut at half way: the next setup continues it, receiving what was left and no more than 10% over it", async () => {
    const o: Options = { major: 15, tag: "r" };
    const { running } = await slowCopyInProgress(o, "8M");
    // What the copy sends: the data directory but its WAL (and a few small files rsync leaves out).
    const whole = Number((await rig.sh("pa", `du -sb --exclude=pg_wal ${dataDir(o)} | cut -f1`)).trim());
    await rig.waitFor("half of the copy on pb", async () => (await copiedBytes(o)) >= whole / 2, 60_000);
    running.kill("SIGTERM");
    const r = await running;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(130);
    await nothingLeftBehind(o);
    const left = whole - (await copiedBytes(o));
    const again = await pgrep(["setup", "-i", inventory(o)]);
    expect(again.exitCode, again.all).toBe(0);
    const moved = /\[pb\] ✓ cloned pa .* with rsync, continued: (\d+) MB received for (\d+) MB of files/.exec(again.stderr);
    expect(moved, again.stderr).not.toBeNull();
    const [received, total] = [Number(moved![1]) * 2 ** 20, Number(moved![2]) * 2 ** 20];
    expect(Math.abs(total - whole) / whole, `rsync's ${total} bytes of files, the primary's ${whole}`).toBeLessThan(0.05);
    expect(left / whole).toBeGreaterThan(0.2);
    // rsync's count rounded to a MB; 10% over what was left, and one MB for the rounding.
    expect(received, `received ${received} bytes, ${left} were left of ${whole}`).toBeLessThanOrEqual(1.1 * left + 2 ** 20);
    await waitReplayed(o);
    expect(await sql("pb", o, "SELECT count(*) FROM big")).toBe("40000");
    await stopBoth(o);
  });

  it("Ctrl-C while an old copy is brought up to date: the backup is ended, the key revoked, the copy kept and unstartable; exit 130; the next setup continues it", async () => {
    const o: Options = { major: 16, tag: "i" };
    const { running } = await slowCopyInProgress(o, "1M", "an old copy");
    running.kill("SIGINT");
    const r = await running;
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(130);
    expect(r.stderr).toMatch(/interrupted \(SIGINT\); cleaning up/);
    await nothingLeftBehind(o);
    await nextSetupConverges(o);
  });
});
