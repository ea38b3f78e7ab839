import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep, pgrepStarted } from "../cli.js";
import { dryRun } from "../rig/dry-run.js";
import { Rig } from "../rig/rig.js";

// Three real hosts (containers with sshd and PostgreSQL 15), driven through the built CLI over SSH.
// pg3 is reached as the unprivileged user 'deploy', who becomes root and postgres through sudo.
// The tests run in order and build on each other: the cluster the first ones make is the one the later
// ones change, break and repair.

let rig: Rig;
let inv: string;
// What the applications of this cluster need, declared in the inventory: nothing is done by hand on a host.
// Clients (this machine) reach the hosts from the Docker network's own subnet: samenet.
const APPS = `applications:
  max_lag_seconds: 2
  roles:
    - { name: app, password: { env: APP_DB_PASSWORD } }
    - { name: reporting }
  databases:
    - { name: app, owner: app, connect: [app, reporting] }
  access:
    - { database: app, user: [app, reporting], source: samenet }`;
// Any password must work: this one holds what YAML, ERB, URIs and shells treat specially.
const appPassword = `app pw: "quoted" #x <%= 6*7 %> \${HOME} $(id) @/:?&=%+ ${randomBytes(9).toString("base64url")}`;

const startTimes = async () =>
  Object.fromEntries(await Promise.all(["pg1", "pg2", "pg3"].map(async (h) => [h, await rig.psql(h, "SELECT pg_postmaster_start_time()")])));

/**
 * Runs `command` while each standby is read from every ~20 ms and every host is written to (only the
 * primary accepts), each by a loop on its own host stamping every answer with the machine's clock (the
 * containers share it).
 */
/** The longest write pause of a rolling restart or a switchover, as the README states it (Restarts, switchover). */
const WRITE_PAUSE_BOUND_MS = 5000;

async function underLoad<T>(command: () => Promise<T>): Promise<{ r: T; writePauseMs: number; expectReadsFromAllButOne(): void }> {
  const loop = (name: string, sql: string) =>
    `rm -f /tmp/${name}.stop /tmp/${name}.done; setsid sh -c 'while [ ! -f /tmp/${name}.stop ]; do if runuser -u postgres -- psql -XAtqc "${sql}" >/dev/null 2>&1; then echo "$(date +%s%3N) ok"; else echo "$(date +%s%3N) fail"; fi; sleep 0.02; done; touch /tmp/${name}.done' > /tmp/${name}.log 2>&1 < /dev/null &`;
  const hosts = ["pg1", "pg2", "pg3"];
  await Promise.all([...hosts.map((h) => rig.sh(h, loop("writes", "INSERT INTO rolling_probe VALUES (now())"))), rig.sh("pg2", loop("reads", "SELECT 1")), rig.sh("pg3", loop("reads", "SELECT 1"))]);
  const oks = async (h: string, n: string) => Number((await rig.sh(h, `grep -c ok /tmp/${n}.log || true`)).trim());
  await rig.waitFor("the writer and both readers to be under way", async () => (await Promise.all(hosts.map((h) => oks(h, "writes")))).some((n) => n >= 3) && (await oks("pg2", "reads")) >= 3 && (await oks("pg3", "reads")) >= 3);
  const r = await command();
  const parse = (l: string) => l.trim().split("\n").map((x) => x.split(" ")).map(([t, v]) => ({ t: Number(t), ok: v === "ok" }));
  const stop = (h: string, n: string) => rig.sh(h, `touch /tmp/${n}.stop; for i in $(seq 1 100); do [ -e /tmp/${n}.done ] && break; sleep 0.05; done; cat /tmp/${n}.log`).then(parse);
  const [writes, reads2, reads3] = await Promise.all([Promise.all(hosts.map((h) => stop(h, "writes"))), stop("pg2", "reads"), stop("pg3", "reads")]);
  const samples = [[], reads2, reads3];
  // Writes go wherever the primary is (a switchover moves it): the longest gap between accepted ones.
  const okTimes = writes.flat().filter((x) => x.ok).map((x) => x.t).sort((a, b) => a - b);
  let writePauseMs = 0;
  for (let i = 1; i < okTimes.length; i++) writePauseMs = Math.max(writePauseMs, okTimes[i]! - okTimes[i - 1]!);
  /** The spans in which a standby did not answer: from its first failed read to its next good one. */
  const outages = (s: { t: number; ok: boolean }[]) => {
    const spans: [number, number][] = [];
    let from: number | undefined;
    for (const x of s) {
      if (!x.ok && from === undefined) from = x.t;
      if (x.ok && from !== undefined) spans.push([from, x.t]), (from = undefined);
    }
    if (from !== undefined) spans.push([from, Infinity]);
    return spans;
  };
  return {
    r,
    writePauseMs,
    expectReadsFromAllButOne() {
      for (const s of samples.slice(1)) expect(s.length).toBeGreaterThan(20);
      const [a, b] = [outages(samples[1]!), outages(samples[2]!)];
      const both = a.flatMap(([s1, e1]) => b.filter(([s2, e2]) => s1 < e2 && s2 < e1).map(([s2, e2]) => `pg2 ${s1}–${e1} with pg3 ${s2}–${e2}`));
      expect(both, "both standbys refused reads at once").toEqual([]);
    },
  };
}

describe("pgrep setup on three hosts over SSH", () => {
  beforeAll(async () => {
    // NET_ADMIN: a test cuts the packets between two hosts.
    rig = await Rig.start(["pg1", "pg2", "pg3"], [], {}, ["NET_ADMIN"]);
    process.env.APP_DB_PASSWORD = appPassword; // every pgrep the tests start inherits it
    // pg3 is reached as a sudo user, the others as root: both ways of becoming root and postgres are used.
    inv = rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, extraTop: APPS });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  const fingerprint = (h: string) => rig.fingerprint(h);

  it("--dry-run on fresh hosts prints the plan with diffs and changes nothing", async () => {
    const before = await Promise.all(["pg1", "pg2", "pg3"].map(fingerprint));
    const r = await pgrep(["setup", "-i", inv, "--dry-run"]);
    expect(r.exitCode, r.all).toBe(7); // changes pending
    expect(r.stdout).toMatch(/\[pg1\] create the PostgreSQL cluster/);
    expect(r.stdout).toMatch(/\[pg2\] clone from pg1 with pg_basebackup/);
    expect(r.stdout).toMatch(/\+\+\+ \/etc\/postgresql\/15\/main\/conf\.d\/pgrep\.conf\tafter pgrep/);
    expect(r.stdout).toMatch(/\+host    replication    replicator    \d+\.\d+\.\d+\.\d+\/32    scram-sha-256    # pg2/);
    expect(r.stdout).toMatch(/content not shown, it holds the replication password/);
    // The applications' rules on every host, their roles and database on the primary.
    for (const h of ["pg1", "pg2", "pg3"]) expect(r.stdout).toMatch(new RegExp(`\\[${h}\\] write /etc/postgresql/15/main/pg_hba\\.conf — let the cluster's hosts open replication connections \\(SCRAM\\), and applications connect`));
    expect(r.stdout).toMatch(/\+host    app    app,reporting    samenet    scram-sha-256    # applications\.access\[0\]/);
    expect(r.stdout).toMatch(/\[pg1\] create or update the application roles app, reporting — app: missing; reporting: missing/);
    expect(r.stdout).toMatch(/\[pg1\] create database app; let only the named roles connect to app/);
    expect(r.stderr).toMatch(/Dry run: nothing was changed/);
    expect(await Promise.all(["pg1", "pg2", "pg3"].map(fingerprint))).toEqual(before);
    expect(existsSync(join(rig.dir, "rig.state"))).toBe(false); // not even the password file
  });

  it("builds a primary and two streaming standbys: one SSH login per host, no secret in any process or log, no colours in a pipe", async () => {
    // The password the inventory would have generated, made beforehand so that every host can be watched for it.
    const password = randomBytes(24).toString("base64url");
    mkdirSync(join(rig.dir, "rig.state"), { mode: 0o700 });
    writeFileSync(join(rig.dir, "rig.state", "replication-password"), `${password}\n`, { mode: 0o600 });
    // Likewise the application role's generated one; the other comes from the environment.
    const reporting = randomBytes(18).toString("base64url");
    writeFileSync(join(rig.dir, "rig.state", "role-reporting-password"), `${reporting}\n`, { mode: 0o600 });
    const logins = Object.fromEntries(["pg1", "pg2", "pg3"].map((h) => [h, rig.sshLogins(h)]));
    const watch = await rig.watchForSecrets(["pg1", "pg2", "pg3"], [password, appPassword, reporting]);
    // Without NO_COLOR: a pipe alone must keep colours and live lines out.
    const r = await pgrep(["setup", "-i", inv], {}, { colours: true });
    expect(await watch.stop()).toEqual([]);
    expect(Object.fromEntries(["pg1", "pg2", "pg3"].map((h) => [h, rig.sshLogins(h) - logins[h]!]))).toEqual({ pg1: 1, pg2: 1, pg3: 1 });
    console.log(`setup of 3 hosts took ${r.ms} ms`);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s+pg1/);
    expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
    // Progress of the copies, as plain lines (not a terminal), without colours.
    expect(r.stderr).toMatch(/\[pg2\] pg_basebackup from pg1: \d+% of [\d.]+ MB/);
    expect(r.all).not.toMatch(/\x1b\[/);
    // The passwords stay in the state directory (or the environment) and out of the output.
    for (const secret of [password, appPassword, reporting]) expect(r.all).not.toContain(secret);
    // Debian's postgresql.conf is left alone; pgrep's settings live in conf.d.
    expect(await rig.sh("pg1", "grep -c pgrep /etc/postgresql/15/main/postgresql.conf || true")).toMatch(/^0/);
    expect(await rig.sh("pg2", "cat /etc/postgresql/15/main/conf.d/pgrep.conf")).toMatch(/primary_conninfo = 'host=pg1 port=5432 user=replicator passfile=\/var\/lib\/postgresql\/.pgpass application_name=pg2'/);
    expect(await rig.sh("pg2", "stat -c '%a %U' /var/lib/postgresql/.pgpass")).toBe("600 postgres\n");
    // pg3 was set up through the sudo user, and by nobody else.
    const logs = spawnSync("docker", ["logs", rig.host("pg3").container.getId()], { encoding: "utf8" });
    const sshdLog = `${logs.stdout}${logs.stderr}`;
    expect(sshdLog).toMatch(/Accepted publickey for deploy /);
    expect(sshdLog).not.toMatch(/Accepted publickey for root /);
  });

  it("replicates rows to both standbys, which refuse writes", async () => {
    await rig.psql("pg1", "CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 500) g");
    for (const s of ["pg2", "pg3"]) {
      await rig.waitReplayed("pg1", s);
      expect(await rig.psql(s, "SELECT count(*) || ':' || sum(id) FROM t")).toBe("500:125250");
      expect(await rig.psql(s, "SELECT pg_is_in_recovery()")).toBe("t");
      await expect(rig.psql(s, "INSERT INTO t VALUES (1000, 'x')")).rejects.toThrow(/read-only transaction/);
    }
    const senders = await rig.psql("pg1", "SELECT string_agg(application_name || '=' || state, ',' ORDER BY application_name) FROM pg_stat_replication");
    expect(senders).toBe("pg2=streaming,pg3=streaming");
  });

  it("applications connect through the inventory's rules and roles alone: ActiveRecord, libpq URIs, CONNECT only for the named roles", async () => {
    const appInv = rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, appAddresses: true, file: "rig-app.yml", extraTop: APPS });
    const ip = (h: string) => rig.host(h).container.getIpAddress(rig.network.getName());
    // Made by setup on the primary, replicated to the standbys: nobody created them by hand.
    for (const h of ["pg1", "pg2", "pg3"]) {
      expect(await rig.psql(h, "SELECT rolname || ':' || rolcanlogin || ':' || left(rolpassword, 13) FROM pg_authid WHERE rolname IN ('app', 'reporting') ORDER BY 1")).toBe("app:true:SCRAM-SHA-256\nreporting:true:SCRAM-SHA-256");
      expect(await rig.psql(h, "SELECT pg_get_userbyid(datdba) || ':' || pg_encoding_to_char(encoding) || ':' || has_database_privilege('public', oid, 'CONNECT') FROM pg_database WHERE datname = 'app'")).toBe("app:UTF8:false");
    }

    const yml = await pgrep(["app-config", "-i", appInv, "--format", "rails"]);
    expect(yml.exitCode, yml.all).toBe(0);
    // The role's password comes from APP_DB_PASSWORD (the inventory says so); the file names the variable.
    expect(yml.stdout).toContain('password: <%= Psych.to_json(ENV["APP_DB_PASSWORD"]).chomp %>');
    expect(yml.stdout).toContain("connects_to database: { writing: :primary, reading: :primary_replica }");
    const file = join(rig.dir, "database.yml");
    writeFileSync(file, yml.stdout);
    const ruby = spawnSync("ruby", ["test/integration/app/active_record_check.rb", file, "from-rails"], { encoding: "utf8", env: { ...process.env, APP_DB_PASSWORD: appPassword } });
    expect(ruby.status, `${ruby.stdout}${ruby.stderr}${ruby.error ?? ""}`).toBe(0);
    const seen = JSON.parse(ruby.stdout) as Record<string, unknown>;
    expect(seen).toMatchObject({ writing_in_recovery: false, writing_server: ip("pg1"), reading_in_recovery: true, replicated: true, write_while_reading: "ActiveRecord::ReadOnlyError" });
    expect([ip("pg2"), ip("pg3")]).toContain(seen.reading_server);

    // --with-secrets writes the password itself, taken from where setup took it, and nothing else needs it.
    const { APP_DB_PASSWORD: _unset, ...noPassword } = process.env;
    const withSecrets = await pgrep(["app-config", "-i", appInv, "--format", "rails", "--with-secrets"]);
    expect(withSecrets.stdout).toContain(`password: ${JSON.stringify(appPassword).replace("<%", "<%%")}`);
    writeFileSync(file, withSecrets.stdout);
    const again = spawnSync("ruby", ["test/integration/app/active_record_check.rb", file, "with-secrets"], { encoding: "utf8", env: noPassword });
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ writing_in_recovery: false, reading_in_recovery: true, replicated: true });

    // The libpq multi-host URI finds the primary whichever host comes first; the second role (its password
    // generated by setup) connects too, and a role the database does not name cannot.
    const uri = (await pgrep(["app-config", "-i", appInv, "--format", "uri", "--user", "reporting"])).stdout.trim();
    expect(uri).toBe(`postgresql://reporting@${ip("pg1")}:5432,${ip("pg2")}:5432,${ip("pg3")}:5432/app?target_session_attrs=read-write&connect_timeout=5`);
    const reordered = uri.replace(`${ip("pg1")}:5432,${ip("pg2")}:5432`, `${ip("pg2")}:5432,${ip("pg1")}:5432`);
    const reportingPassword = readFileSync(join(rig.dir, "rig.state", "role-reporting-password"), "utf8").trim();
    const q = spawnSync("psql", [reordered, "-XAtc", "SELECT pg_is_in_recovery()"], { encoding: "utf8", env: { ...process.env, PGPASSWORD: reportingPassword } });
    expect(q.stdout.trim(), q.stderr).toBe("f");
    await rig.psql("pg1", "CREATE ROLE outsider LOGIN PASSWORD 'outsider-pw'");
    const outsider = spawnSync("psql", [`postgresql://outsider@${ip("pg1")}:5432/app`, "-XAtc", "SELECT 1"], { encoding: "utf8", env: { ...process.env, PGPASSWORD: "outsider-pw" } });
    expect(outsider.stderr).toMatch(/no pg_hba\.conf entry for host .* user "outsider", database "app"/);
    await rig.psql("pg1", "DROP ROLE outsider");
  });

  it("application roles and databases: a changed password is put back, a database's other owner is reported and left", async () => {
    await rig.psql("pg1", "ALTER ROLE app PASSWORD 'changed-by-hand'; ALTER DATABASE app OWNER TO reporting");
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg1\] create or update the application role app — app: its password is not the inventory's/);
    expect(r.stderr).toMatch(/database app: exists on pg1 with owner reporting \(the inventory says app; ALTER DATABASE app OWNER TO app\); pgrep does not change it/);
    expect(await rig.psql("pg1", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'")).toBe("reporting");
    const login = spawnSync("psql", [`postgresql://app@${rig.host("pg1").container.getIpAddress(rig.network.getName())}:5432/app`, "-XAtc", "SELECT current_user"], { encoding: "utf8", env: { ...process.env, PGPASSWORD: appPassword } });
    expect(login.stdout.trim(), login.stderr).toBe("app");
    // Ownership passed back and forth takes the grants with it: setup gives reporting its CONNECT again.
    await rig.psql("pg1", "ALTER DATABASE app OWNER TO app");
    const back = await pgrep(["setup", "-i", inv]);
    expect(back.exitCode, back.all).toBe(0);
    expect(await rig.psql("pg1", "SELECT has_database_privilege('reporting', 'app', 'CONNECT') || ':' || has_database_privilege('public', 'app', 'CONNECT')")).toBe("true:false");
  });

  it("a reject a DBA wrote keeps rejecting: pgrep's block moves below it, and stays above a deny-by-default line", async () => {
    const hba = "/etc/postgresql/15/main/pg_hba.conf";
    const ip = rig.host("pg1").container.getIpAddress(rig.network.getName());
    const login = (user: string, password: string) => spawnSync("psql", [`postgresql://${user}@${ip}:5432/app`, "-XAtc", "SELECT current_user"], { encoding: "utf8", env: { ...process.env, PGPASSWORD: password } });
    const reportingPassword = readFileSync(join(rig.dir, "rig.state", "role-reporting-password"), "utf8").trim();
    expect(login("reporting", reportingPassword).stdout.trim()).toBe("reporting");
    // Below pgrep's block, where a DBA appends: one particular reject, then deny-by-default.
    await rig.sh("pg1", `printf '%s\\n' 'host app reporting samenet reject  # dba' 'host all all 0.0.0.0/0 reject  # dba' >> ${hba}`);
    const dry = await dryRun(rig, ["setup", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(7);
    expect(dry.stdout).toMatch(/\[pg1\] write \/etc\/postgresql\/15\/main\/pg_hba\.conf/);
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    const order = (await rig.sh("pg1", `grep -nE '# (BEGIN|END) pgrep|# dba' ${hba} | cut -d: -f2-`)).trim().split("\n");
    expect(order).toEqual(["host app reporting samenet reject  # dba", "# BEGIN pgrep cluster rig", "# END pgrep cluster rig", "host all all 0.0.0.0/0 reject  # dba"]);
    expect(login("reporting", reportingPassword).stderr).toMatch(/pg_hba\.conf rejects connection for host .* user "reporting", database "app"/);
    expect(login("app", appPassword).stdout.trim()).toBe("app");
    expect((await pgrep(["setup", "-i", inv])).stderr).toMatch(/Nothing to change/);
    // The DBA's lines gone: pgrep's block stays where it is, and reporting connects again.
    await rig.sh("pg1", `sed -i '/# dba$/d' ${hba}`);
    expect((await pgrep(["setup", "-i", inv])).stderr).toMatch(/Nothing to change/);
    await rig.sh("pg1", "pg_ctlcluster 15 main reload");
    await rig.waitFor("reporting to connect again", async () => login("reporting", reportingPassword).stdout.trim() === "reporting");
  });

  it("Rails reads respect lag: a session reads its own write, a standby past the limit loses reads to the primary, and status says so", async () => {
    const appInv = rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, appAddresses: true, file: "rig-app.yml", extraTop: APPS });
    const dir = join(rig.dir, "rails-app");
    const out = await pgrep(["app-config", "-i", appInv, "--format", "rails", "--out", dir, "--sticky-seconds", "1"]);
    expect(out.exitCode, out.all).toBe(0);
    expect(out.stderr).toContain(`wrote ${dir}/config/initializers/pgrep_replica_reads.rb`);
    const rails = (mode: string, item: string) => {
      const r = spawnSync("ruby", ["test/integration/app/replica_reads_check.rb", dir, mode, item], { encoding: "utf8", env: { ...process.env, STICKY_SECONDS: "1" } });
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      return r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { method: string; in_recovery: boolean; sees_item: boolean });
    };
    const served = (x: { in_recovery: boolean }) => (x.in_recovery ? "standby" : "primary");
    const reads = async () => ((JSON.parse((await pgrep(["status", "-i", inv, "--json"])).stdout) as { hosts: { name: string; withinLagLimit: boolean | null }[] }).hosts).map((h) => `${h.name}:${h.withinLagLimit}`);

    // Caught up: a write, the same session's read at once (from the primary, it sees its write), and after the delay (a standby).
    const sticky = rails("sticky", "first");
    expect(sticky.map((x) => `${x.method} ${served(x)} ${x.sees_item}`)).toEqual(["POST primary true", "GET primary true", "GET standby true"]);
    expect(await reads()).toEqual(["pg1:null", "pg2:true", "pg3:true"]);

    // Both standbys stop replaying and fall behind: reads from a new session go to the primary, which has the row.
    for (const h of ["pg2", "pg3"]) await rig.psql(h, "SELECT pg_wal_replay_pause()");
    await rig.sh("pg1", `runuser -u postgres -- psql -X -d app -c "INSERT INTO items (name) VALUES ('while-paused')"`);
    await rig.waitFor("both standbys past the lag limit", async () => (await reads()).join() === "pg1:null,pg2:false,pg3:false");
    const behind = await pgrep(["status", "-i", inv]);
    expect(behind.stdout).toMatch(/APP READS \(≤ 2 s\)/);
    expect(behind.stdout).toMatch(/pg2 .* no \(\d+\.\d s behind\)/);
    expect(rails("read", "while-paused").map((x) => `${served(x)} ${x.sees_item}`)).toEqual(["primary true"]);

    // Replay resumed: reads return to a standby, which now has the row.
    for (const h of ["pg2", "pg3"]) await rig.psql(h, "SELECT pg_wal_replay_resume()");
    await rig.waitFor("both standbys within the lag limit", async () => (await reads()).join() === "pg1:null,pg2:true,pg3:true");
    expect(rails("read", "while-paused").map((x) => `${served(x)} ${x.sees_item}`)).toEqual(["standby true"]);
  });

  it("a Rails application keeps writing through a failover and a switchover back, with the database.yml made before them: no acknowledged write lost", async () => {
    const appInv = rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, appAddresses: true, file: "rig-app.yml", extraTop: APPS });
    const file = join(rig.dir, "database-failover.yml");
    writeFileSync(file, (await pgrep(["app-config", "-i", appInv, "--format", "rails"])).stdout);
    await rig.sh("pg1", `runuser -u postgres -- psql -X -d app -c "CREATE TABLE acked_through_failover (id int PRIMARY KEY); ALTER TABLE acked_through_failover OWNER TO app"`);
    const ip = (h: string) => rig.host(h).container.getIpAddress(rig.network.getName());
    const stopFile = join(rig.dir, "writer.stop");
    const app = spawn("ruby", ["test/integration/app/failover_writer.rb", file, stopFile], { env: { ...process.env, APP_DB_PASSWORD: appPassword } });
    let out = "";
    app.stdout.on("data", (d: Buffer) => (out += d.toString()));
    app.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const ended = new Promise<number | null>((res) => app.on("exit", res));
    const progress = () => (existsSync(`${stopFile}.progress`) ? readFileSync(`${stopFile}.progress`, "utf8") : "0 -").split(" ");
    const writingTo = async (h: string) => {
      const mark = Number(progress()[0]);
      await rig.waitFor(`the application to write to ${h} (seen: ${progress().join(" ")})`, async () => {
        const [n, server] = progress();
        return server === ip(h) && Number(n) > mark + 5;
      }).catch((e: Error) => {
        throw new Error(`${e.message}; the application's last answer: ${progress().join(" ")}`);
      });
    };
    try {
      await rig.waitFor("the application to write", async () => existsSync(`${stopFile}.progress`));
      await writingTo("pg1");
      // pg1's PostgreSQL crashes with its host up; failover chooses a standby, and the application finds it.
      await rig.sh("pg1", "pg_ctlcluster 15 main stop -m immediate");
      const f = await pgrep(["failover", "-i", inv]);
      expect(f.exitCode, f.all).toBe(0);
      const chosen = /^Fail over to (pg[23]) /m.exec(f.stdout)?.[1] ?? /→ (pg[23]) /.exec(f.stderr)?.[1];
      expect(chosen, f.all).toMatch(/^pg[23]$/);
      await writingTo(chosen!);
      // pg1 back as a standby (rejoin, if the failover left it waiting), then a switchover back to it.
      if (!/pg1\s+standby\s+streaming/.test(f.stdout)) expect((await pgrep(["rejoin", "pg1", "-i", inv])).exitCode).toBe(0);
      const back = await pgrep(["switchover", "pg1", "-i", inv]);
      expect(back.exitCode, back.all).toBe(0);
      await writingTo("pg1");
    } finally {
      writeFileSync(stopFile, "");
      expect(await ended, out).toBe(0);
    }
    const seen = JSON.parse(out.trim().split("\n").at(-1)!) as { acked: [number, string, number][]; errors: Record<string, number> };
    // Every acknowledged write is on the primary; the writes went to pg1, the chosen standby, pg1.
    const ids = seen.acked.map(([id]) => id);
    const stored = new Set((await rig.sh("pg1", `runuser -u postgres -- psql -XAt -d app -c "SELECT id FROM acked_through_failover"`)).trim().split("\n").map(Number));
    expect(ids.filter((id) => !stored.has(id)), "acknowledged writes missing on the primary").toEqual([]);
    const servers = seen.acked.map(([, server]) => server).filter((x, i, a) => x !== a[i - 1]);
    expect(servers.map((x) => ["pg1", "pg2", "pg3"].find((h) => ip(h) === x))).toEqual(["pg1", expect.stringMatching(/^pg[23]$/), "pg1"]);
    const gaps = seen.acked.slice(1).map(([, , t], i) => t - seen.acked[i]![2]);
    console.log(`application through failover and switchover: ${ids.length} writes, longest pause ${Math.max(...gaps)} ms, errors ${JSON.stringify(seen.errors)}`);
    // The cluster is as before for the tests that follow: pg1 the primary, both standbys streaming from it.
    for (const s of ["pg2", "pg3"]) await rig.waitReplayed("pg1", s);
    expect(await rig.psql("pg1", "SELECT string_agg(application_name || '=' || state, ',' ORDER BY application_name) FROM pg_stat_replication")).toBe("pg2=streaming,pg3=streaming");
  });

  it("the secrets watcher sees a planted secret in a program that lives for a moment, in its arguments and in its environment", async () => {
    const [inArgs, inEnv] = [randomBytes(12).toString("hex"), randomBytes(12).toString("hex")];
    const watch = await rig.watchForSecrets(["pg2"], [inArgs, inEnv]);
    const h = rig.host("pg2");
    // One login over SSH, as pgrep's commands arrive: `true` ends within a millisecond.
    const ssh = spawnSync("ssh", ["-i", rig.keyFile, "-o", `UserKnownHostsFile=${rig.knownHostsFile}`, "-o", "BatchMode=yes", "-p", String(h.sshPort), `root@${h.sshHost}`, `env PLANTED=${inEnv} true ${inArgs}`], { encoding: "utf8" });
    expect(ssh.status, ssh.stderr).toBe(0);
    const hits = await watch.stop();
    expect(hits.filter((x) => x.includes(`true ${inArgs}`) || x.includes(inArgs))).not.toEqual([]);
    expect(hits.filter((x) => x.includes(`PLANTED=${inEnv}`))).not.toEqual([]);
  });

  it("changes nothing on a second run", async () => {
    const before = await startTimes();
    const r = await pgrep(["setup", "-i", inv]);
    console.log(`no-op setup took ${r.ms} ms`);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/Nothing to change/);
    expect(await startTimes()).toEqual(before);
  });

  it("drift a monitor can alert on: a hand edit, ALTER SYSTEM and a pending restart show in status and dry run (exit 7)", async () => {
    const conf = "/etc/postgresql/15/main/conf.d/pgrep.conf";
    expect((await pgrep(["status", "-i", inv])).exitCode).toBe(0);
    expect((await dryRun(rig, ["setup", "-i", inv])).exitCode).toBe(0);

    // A hand edit of pgrep's own file, and settings put in postgresql.auto.conf behind its back.
    await rig.sh("pg2", `echo "work_mem = '64MB'  # by hand" >> ${conf}`);
    await rig.psql("pg3", "ALTER SYSTEM SET work_mem = '32MB'");
    await rig.psql("pg3", "ALTER SYSTEM SET wal_keep_size = '2GB'");
    await rig.psql("pg3", "ALTER SYSTEM SET max_connections = 150");
    await rig.psql("pg3", "SELECT pg_reload_conf()");
    await rig.waitFor("pg3's reload to reach new sessions", async () => (await rig.psql("pg3", "SHOW work_mem")) === "32MB");

    const st = await pgrep(["status", "-i", inv]);
    expect(st.exitCode, st.all).toBe(7);
    expect(st.stdout).toMatch(/pg1\s+primary\s+running/); // healthy: drift is not degradation
    expect(st.stdout).toMatch(/Differs from the inventory:\n/);
    expect(st.stdout).toMatch(new RegExp(`pg2: ${conf} differs from what pgrep writes`));
    expect(st.stdout).toMatch(/pg3: postgresql\.auto\.conf \(ALTER SYSTEM\) sets work_mem, wal_keep_size, max_connections, overriding pgrep's wal_keep_size/);
    expect(st.stdout).toMatch(/pg3: waits for a restart to apply max_connections/);
    expect(st.stdout).not.toMatch(/pg1: /);
    const json = JSON.parse((await pgrep(["status", "-i", inv, "--json"])).stdout) as { differs: boolean; hosts: { name: string; differs: string[] }[] };
    expect(json.differs).toBe(true);
    expect(json.hosts.find((h) => h.name === "pg1")!.differs).toEqual([]);
    expect(json.hosts.find((h) => h.name === "pg3")!.differs).toHaveLength(2);

    const dry = await dryRun(rig, ["setup", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(7);
    expect(dry.stdout).toMatch(/-work_mem = '64MB'  # by hand/);
    expect(dry.stdout).toMatch(/pg3: postgresql\.auto\.conf \(ALTER SYSTEM\) sets/);

    // setup puts its own file back and makes the restart that waited; what ALTER SYSTEM set stays, and
    // still shows, until the DBA resets it (that makes a restart pending again, which setup then makes).
    const fixed = await pgrep(["setup", "-i", inv]);
    expect(fixed.exitCode, fixed.all).toBe(0);
    expect(fixed.stderr).toMatch(/\[pg2\] ✓ wrote \/etc\/postgresql\/15\/main\/conf\.d\/pgrep\.conf/);
    expect(fixed.stderr).toMatch(/\[pg3\] ✓ restarted for max_connections/);
    const left = await pgrep(["status", "-i", inv]);
    expect(left.exitCode, left.all).toBe(7);
    expect(left.stdout).toMatch(/Differs from the inventory:\n  pg3: postgresql\.auto\.conf \(ALTER SYSTEM\) sets work_mem, wal_keep_size, max_connections, overriding pgrep's wal_keep_size$/);
    await rig.psql("pg3", "ALTER SYSTEM RESET ALL");
    await rig.psql("pg3", "SELECT pg_reload_conf()");
    await rig.waitFor("pg3's reload to reach new sessions", async () => (await rig.psql("pg3", "SHOW work_mem")) !== "32MB");
    expect((await pgrep(["setup", "-i", inv])).stderr).toMatch(/\[pg3\] ✓ restarted for max_connections/);
    const clean = await pgrep(["status", "-i", inv]);
    expect(clean.exitCode, clean.all).toBe(0);
    expect(clean.stdout).not.toMatch(/Differs from the inventory/);
  });

  it("drift setup leaves or would refuse: a deleted pgrep.conf, a setting after include_dir, application objects changed by hand, a refusal; status names each (exit 7)", async () => {
    const conf = "/etc/postgresql/15/main/conf.d/pgrep.conf";
    const main = "/etc/postgresql/15/main/postgresql.conf";
    const status = async () => {
      const r = await pgrep(["status", "-i", inv]);
      return { code: r.exitCode, differs: r.stdout.split("Differs from the inventory:\n")[1] ?? "" };
    };
    // What setup would refuse is said by status too, not hidden.
    await rig.psql("pg3", "ALTER SYSTEM SET primary_conninfo = 'host=10.255.0.1 port=5432'");
    const refusing = await status();
    expect(refusing.code).toBe(7);
    expect(refusing.differs).toMatch(/pg3: setup refuses: postgresql\.auto\.conf sets primary_conninfo over pgrep's settings, pointing at 10\.255\.0\.1 port 5432, not at pg1/);
    expect((await pgrep(["setup", "-i", inv])).exitCode).toBe(4);
    await rig.psql("pg3", "ALTER SYSTEM RESET primary_conninfo");
    expect((await status()).code).toBe(0);

    await rig.sh("pg2", `rm ${conf}`);
    await rig.sh("pg3", `echo "wal_keep_size = '128MB'   # after include_dir" >> ${main}`);
    await rig.psql("pg1", "ALTER ROLE app PASSWORD 'changed-by-hand'; ALTER DATABASE app OWNER TO reporting");
    const st = await status();
    expect(st.code).toBe(7);
    expect(st.differs).toMatch(new RegExp(`pg2: ${conf} is missing: pgrep's settings do not apply`));
    expect(st.differs).toMatch(new RegExp(`pg3: ${main} sets wal_keep_size after it includes pgrep's settings, and so overrides them`));
    expect(st.differs).toMatch(/pg1: application role app: its password is not the inventory's/);
    expect(st.differs).toMatch(/pg1: database app: exists on pg1 with owner reporting \(the inventory says app; ALTER DATABASE app OWNER TO app\); pgrep does not change it/);
    const dry = await dryRun(rig, ["setup", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(7);
    expect(dry.stdout).toMatch(new RegExp(`pg3: ${main} sets wal_keep_size after it includes pgrep's settings`));

    // setup puts back what is its own; what it leaves is still named until the DBA changes it back.
    expect((await pgrep(["setup", "-i", inv])).exitCode).toBe(0);
    const left = await status();
    expect(left.code).toBe(7);
    expect(left.differs).not.toMatch(/is missing|application role/);
    // Without the password's variable the role's password cannot be compared: not told as drift.
    expect((await pgrep(["status", "-i", inv], { APP_DB_PASSWORD: "" })).stdout).not.toMatch(/application role app/);
    expect(left.differs).toMatch(/pg3: .* sets wal_keep_size after it includes/);
    // What is left needs no step of setup's, and still makes its dry run exit 7.
    const leftDry = await dryRun(rig, ["setup", "-i", inv]);
    expect(leftDry.exitCode, leftDry.all).toBe(7);
    expect(leftDry.stdout).toMatch(/^Nothing to change/);
    await rig.sh("pg3", `sed -i '/# after include_dir$/d' ${main}`);
    await rig.psql("pg1", "ALTER DATABASE app OWNER TO app");
    expect((await pgrep(["setup", "-i", inv])).exitCode).toBe(0);
    expect(await status()).toEqual({ code: 0, differs: "" });
  });

  it("restarts only for a setting that needs it, and reports which", async () => {
    const before = await startTimes();
    const changed = rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, listenAddresses: "0.0.0.0", file: "rig.yml", extraTop: APPS });
    // First as a dry run: the diff shows the change, and nothing is written or restarted.
    const prints = await Promise.all(["pg1", "pg2", "pg3"].map(fingerprint));
    const dry = await pgrep(["setup", "-i", changed, "--dry-run"]);
    expect(dry.exitCode, dry.all).toBe(7);
    expect(dry.stdout).toMatch(/-listen_addresses = '\*'\n\s+\+listen_addresses = '0\.0\.0\.0'/);
    expect(await Promise.all(["pg1", "pg2", "pg3"].map(fingerprint))).toEqual(prints);
    expect(await startTimes()).toEqual(before);

    const r = await pgrep(["setup", "-i", changed]);
    expect(r.exitCode, r.all).toBe(0);
    for (const h of ["pg1", "pg2", "pg3"]) expect(r.stderr).toMatch(new RegExp(`\\[${h}\\] ✓ restarted for listen_addresses`));
    const after = await startTimes();
    for (const h of ["pg1", "pg2", "pg3"]) expect(after[h]).not.toBe(before[h]);
    expect(await rig.psql("pg1", "SHOW listen_addresses")).toBe("0.0.0.0");
    const again = await pgrep(["setup", "-i", changed]);
    expect(again.stderr).toMatch(/Nothing to change/);
    // Back to the suite's inventory.
    expect((await pgrep(["setup", "-i", rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, extraTop: APPS })])).exitCode).toBe(0);
  });

  it("a setting that needs a restart: standbys one at a time, the primary last (first when it lowers the setting); reads never lose more than one standby", async () => {
    const withConnections = (n: number) => rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, extraTop: APPS, settings: `max_connections: ${n}` });
    await rig.psql("pg1", "CREATE TABLE IF NOT EXISTS rolling_probe (at timestamptz)");

    const raised = await underLoad(() => pgrep(["setup", "-i", withConnections(150)]));
    expect(raised.r.exitCode, raised.r.all).toBe(0);
    expect(raised.r.stderr).toMatch(/restart one host at a time \(1 of 3\): pg2:[\s\S]*\(2 of 3\): pg3:[\s\S]*\(3 of 3\): pg1, last:/);
    const up = await startTimes();
    expect([up.pg2! < up.pg3!, up.pg3! < up.pg1!], JSON.stringify(up)).toEqual([true, true]);
    for (const h of ["pg1", "pg2", "pg3"]) expect(await rig.psql(h, "SHOW max_connections")).toBe("150");
    raised.expectReadsFromAllButOne();

    // Lower: a standby may not run below its primary's value, so the primary goes first this time; each
    // standby restarts once it has replayed the primary's new value (else it would refuse to start).
    const lowered = await underLoad(() => pgrep(["setup", "-i", rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, extraTop: APPS })]));
    expect(lowered.r.exitCode, lowered.r.all).toBe(0);
    expect(lowered.r.stderr).toMatch(/\(1 of 3\): pg1, first: it lowers max_connections/);
    const down = await startTimes();
    expect([down.pg1! < down.pg2!, down.pg2! < down.pg3!], JSON.stringify(down)).toEqual([true, true]);
    for (const h of ["pg1", "pg2", "pg3"]) expect(await rig.psql(h, "SHOW max_connections")).toBe("100");
    lowered.expectReadsFromAllButOne();
    console.log(`rolling restart: longest write pause ${raised.writePauseMs} ms (primary last), ${lowered.writePauseMs} ms (primary first)`);
    // The bound the README states (Restarts): writes pause once, for the primary's own restart.
    expect(raised.writePauseMs).toBeLessThan(WRITE_PAUSE_BOUND_MS);
    expect(lowered.writePauseMs).toBeLessThan(WRITE_PAUSE_BOUND_MS);
    expect((await pgrep(["setup", "-i", inv])).stderr).toMatch(/Nothing to change/);
  });

  it("pgrep restart: the order in a dry run, one host alone, and the primary's turn as a switchover", async () => {
    const dry = await dryRun(rig, ["restart", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toMatch(/\(1 of 3\): pg2:\n\s+\[pg2\] restart PostgreSQL — asked for\n\s+\[pg2\] wait until it streams from pg1[\s\S]*\(3 of 3\): pg1, last/);
    const before = await startTimes();
    const one = await pgrep(["restart", "pg3", "-i", inv]);
    expect(one.exitCode, one.all).toBe(0);
    const after = await startTimes();
    expect([after.pg1 === before.pg1, after.pg2 === before.pg2, after.pg3 === before.pg3]).toEqual([true, true, false]);

    // The primary's turn as a switchover: writes pause only for it, the inventory records pg2, and
    // the next setup has nothing to do. Then back.
    const sw = await underLoad(() => pgrep(["restart", "-i", inv, "--restart-primary", "switchover"]));
    expect(sw.r.exitCode, sw.r.all).toBe(0);
    expect(sw.r.stderr).toMatch(/\(3 of 3\): pg1: a switchover to pg2, pg1 restarts as its standby/);
    expect(await rig.psql("pg2", "SELECT pg_is_in_recovery()")).toBe("f");
    expect(await rig.psql("pg1", "SELECT pg_is_in_recovery()")).toBe("t");
    expect(readFileSync(inv, "utf8")).toMatch(/name: pg2\n(?:.*\n)*?\s+role: primary/);
    expect((await pgrep(["setup", "-i", inv])).stderr).toMatch(/Nothing to change/);
    console.log(`rolling restart with a switchover: longest write pause ${sw.writePauseMs} ms`);
    expect(sw.writePauseMs).toBeLessThan(WRITE_PAUSE_BOUND_MS);
    expect((await pgrep(["switchover", "pg1", "-i", inv])).exitCode).toBe(0);
  });

  it("re-clones only the standby whose data directory was wiped", async () => {
    await rig.sh("pg3", "pg_ctlcluster 15 main stop && rm -rf /var/lib/postgresql/15/main/*");
    const before = await startTimes().catch(() => undefined);
    expect(before).toBeUndefined(); // pg3 is down
    const pg1Start = await rig.psql("pg1", "SELECT pg_postmaster_start_time()");
    const pg2Start = await rig.psql("pg2", "SELECT pg_postmaster_start_time()");
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg3\] clone from pg1/);
    expect(r.stderr).not.toMatch(/\[pg2\] clone/);
    expect(r.stderr).not.toMatch(/\[pg1\] (start|restart|create)/);
    expect(await rig.psql("pg1", "SELECT pg_postmaster_start_time()")).toBe(pg1Start);
    expect(await rig.psql("pg2", "SELECT pg_postmaster_start_time()")).toBe(pg2Start);
    await rig.waitReplayed("pg1", "pg3");
    expect(await rig.psql("pg3", "SELECT count(*) FROM t")).toBe("500");
  });

  it("refuses to replace a standby's data that belongs to a running primary of another cluster, unless forced", async () => {
    // pg3 becomes an unrelated, writable cluster with a row of its own.
    await rig.sh("pg3", "pg_ctlcluster 15 main stop; pg_dropcluster 15 main; pg_createcluster 15 main --start >/dev/null");
    await rig.psql("pg3", "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42)");
    const sysidBefore = await rig.psql("pg3", "SELECT system_identifier FROM pg_control_system()");
    // Another cluster's primary, not a split brain of this one: nothing may fence it.
    const st = await pgrep(["status", "-i", inv]);
    expect(st.exitCode, st.all).toBe(5);
    expect(st.stdout).toMatch(/!\s+pg3\s+standby\s+conflicting primary/);
    expect(st.stdout).toMatch(/pg3: the inventory says standby, but it runs the primary of another cluster \(system identifier \d+, not \d+\)/);
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(4);
    expect(r.stderr).toMatch(/pg3: refusing to replace its data: .*another cluster/);
    expect(r.stderr).toMatch(/--force/);
    expect(r.stderr).not.toMatch(/split brain|fenced/);
    expect(await rig.psql("pg3", "SELECT system_identifier FROM pg_control_system()")).toBe(sysidBefore);
    expect(await rig.psql("pg3", "SELECT x FROM precious")).toBe("42");

    const forced = await pgrep(["setup", "-i", inv, "--force", "pg3"]);
    expect(forced.exitCode, forced.all).toBe(0);
    expect(await rig.psql("pg3", "SELECT system_identifier FROM pg_control_system()")).toBe(await rig.psql("pg1", "SELECT system_identifier FROM pg_control_system()"));
    await rig.waitReplayed("pg1", "pg3");
    expect(await rig.psql("pg3", "SELECT count(*) FROM t")).toBe("500");
  });

  it("reports the cluster with status, also as JSON", async () => {
    const r = await pgrep(["status", "-i", inv, "--json"]);
    expect(r.exitCode, r.all).toBe(0);
    const data = JSON.parse(r.stdout) as { healthy: boolean; hosts: { name: string; state: string; observed: string }[] };
    expect(data.healthy).toBe(true);
    expect(data.hosts.map((h) => `${h.name}:${h.observed}:${h.state}`)).toEqual(["pg1:primary:running", "pg2:standby:streaming", "pg3:standby:streaming"]);
  });

  it("gives each standby a slot, shows what it holds, and drops the slot of a standby removed from the inventory", async () => {
    expect(await rig.psql("pg1", "SELECT string_agg(slot_name || ':' || active, ',' ORDER BY slot_name) FROM pg_replication_slots")).toBe("pgrep_pg2:true,pgrep_pg3:true");
    expect(await rig.psql("pg2", "SHOW primary_slot_name")).toBe("pgrep_pg2");
    expect(await rig.psql("pg1", "SHOW max_slot_wal_keep_size")).toBe("10GB");
    const st = await pgrep(["status", "-i", inv]);
    expect(st.stdout).toMatch(/pg2\s+standby\s+streaming\s.*async\s+pgrep_pg2 \(\d/);

    // pg3 leaves the inventory (and is stopped): its slot would keep WAL forever, so setup drops it.
    await rig.sh("pg3", "pg_ctlcluster 15 main stop");
    const without = join(rig.dir, "without-pg3.yml");
    writeFileSync(without, readFileSync(inv, "utf8").replace(/  - name: pg3\n(    .*\n)*/, ""));
    cpSync(join(rig.dir, "rig.state"), join(rig.dir, "without-pg3.state"), { recursive: true });
    const r = await pgrep(["setup", "-i", without]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg1\] drop unused slot pgrep_pg3/);
    expect(await rig.psql("pg1", "SELECT string_agg(slot_name, ',') FROM pg_replication_slots")).toBe("pgrep_pg2");
    const back = await pgrep(["setup", "-i", inv]);
    expect(back.exitCode, back.all).toBe(0);
    expect(back.stderr).toMatch(/\[pg1\] create replication slot pgrep_pg3/);
    expect(back.stdout).toMatch(/pg3\s+standby\s+streaming/);
  });

  it("synchronous standbys: a quorum of one makes commits wait until a standby has them; restarting the only synchronous one does not stall commits", async () => {
    const syncInv = rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, file: "sync.yml", extraTop: `replication:\n  synchronous: { any: 1, of: [pg2, pg3] }\n${APPS}` });
    cpSync(join(rig.dir, "rig.state"), join(rig.dir, "sync.state"), { recursive: true });
    const r = await pgrep(["setup", "-i", syncInv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await rig.psql("pg1", "SHOW synchronous_standby_names")).toBe('ANY 1 ("pg2", "pg3")');
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming\s.*quorum/);
    // Both standbys down: a commit waits (killed after 3 s); one back: commits go through again.
    await rig.sh("pg2", "pg_ctlcluster 15 main stop");
    await rig.sh("pg3", "pg_ctlcluster 15 main stop");
    const waited = await rig.sh("pg1", "timeout 3 runuser -u postgres -- psql -XAtc 'INSERT INTO t VALUES (90001, 1)' >/dev/null 2>&1; echo $?");
    expect(waited.trim()).toBe("124");
    await rig.sh("pg2", "pg_ctlcluster 15 main start");
    await rig.sh("pg1", "timeout 30 runuser -u postgres -- psql -XAtc 'INSERT INTO t VALUES (90002, 1)'");
    await rig.sh("pg3", "pg_ctlcluster 15 main start");

    // pg2 alone synchronous, restarted by pgrep: while it is down commits wait for pg3 instead. Proven by
    // order, not by time: a commit acknowledged while pg2 does not stream could not have waited for it.
    const onlyPg2 = rig.inventory({ primary: "pg1", sshUsers: { pg3: "deploy" }, file: "sync.yml", extraTop: `replication:\n  synchronous: [pg2]\n${APPS}` });
    expect((await pgrep(["setup", "-i", onlyPg2])).exitCode).toBe(0);
    expect(await rig.psql("pg1", "SHOW synchronous_standby_names")).toBe('FIRST 1 ("pg2")');
    await rig.waitFor("pg2 and pg3 to stream", async () => (await rig.psql("pg1", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) === "2");
    const commit = `runuser -u postgres -- psql -XAtq -c "INSERT INTO rolling_probe VALUES (now())" -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg2' AND state = 'streaming'"`;
    await rig.sh("pg1", `rm -f /tmp/sync.stop /tmp/sync.done; setsid sh -c 'while [ ! -f /tmp/sync.stop ]; do if r=$(${commit.replaceAll("'", "'\\''")} 2>/dev/null); then echo "$(date +%s%3N) $r"; fi; sleep 0.02; done; touch /tmp/sync.done' > /tmp/sync.log 2>&1 < /dev/null &`);
    await rig.waitFor("commits to be under way", async () => Number((await rig.sh("pg1", "wc -l < /tmp/sync.log")).trim()) >= 3);
    const restarted = await pgrep(["restart", "pg2", "-i", onlyPg2]);
    const log = (await rig.sh("pg1", "touch /tmp/sync.stop; for i in $(seq 1 100); do [ -e /tmp/sync.done ] && break; sleep 0.05; done; cat /tmp/sync.log")).trim().split("\n").map((l) => l.split(" ").map(Number) as [number, number]);
    expect(restarted.exitCode, restarted.all).toBe(0);
    expect(log.filter(([, pg2]) => pg2 === 0).length, "no commit was acknowledged while pg2 was down").toBeGreaterThan(0);
    expect(restarted.stderr).toMatch(/\[pg1\] write \/etc\/postgresql\/15\/main\/conf\.d\/pgrep\.conf — pg2 is a synchronous standby and restarts: commits wait for pg3 instead/);
    const pause = Math.max(...log.slice(1).map(([t], i) => t - log[i]![0]));
    console.log(`restart of the only synchronous standby: longest pause between acknowledged commits ${pause} ms`);
    expect(pause).toBeLessThan(WRITE_PAUSE_BOUND_MS);
    expect(await rig.psql("pg1", "SHOW synchronous_standby_names")).toBe('FIRST 1 ("pg2")');
    expect((await pgrep(["setup", "-i", onlyPg2])).stderr).toMatch(/Nothing to change/);
    // Back to asynchronous: setup takes the setting away again with a reload.
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
    expect(await rig.psql("pg1", "SHOW synchronous_standby_names")).toBe("");
  });

  it("a copy that fails leaves a consistent standby that the next setup converges from", async () => {
    // A rule of the user's, above pgrep's block, turns pg3 away: the copy fails after its configuration was made.
    const pg3ip = (await rig.sh("pg1", "getent ahosts pg3 | awk '{print $1; exit}'")).trim();
    await rig.sh("pg1", `sed -i '1i host replication all ${pg3ip}/32 reject' /etc/postgresql/15/main/pg_hba.conf && pg_ctlcluster 15 main reload`);
    await rig.sh("pg3", "pg_dropcluster --stop 15 main");
    const failed = await pgrep(["setup", "-i", inv]);
    expect(failed.exitCode, failed.all).toBe(1);
    expect(failed.stderr).toMatch(/pg3: pg_basebackup failed .*rejects replication connection/);
    expect(await rig.sh("pg3", "grep ^data_directory /etc/postgresql/15/main/postgresql.conf")).toMatch(/^data_directory = '\/var\/lib\/postgresql\/15\/main'/);
    expect(await rig.sh("pg3", "ls -A /var/lib/postgresql/15/ | tr '\\n' ' '")).toBe("main ");
    expect(await rig.sh("pg3", "ls -A /var/lib/postgresql/15/main | wc -l")).toBe("0\n");
    await rig.sh("pg1", "sed -i '1d' /etc/postgresql/15/main/pg_hba.conf && pg_ctlcluster 15 main reload");
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
  });

  it("wait returns when the standbys stream, and fails with the reason on timeout", async () => {
    const ok = await pgrep(["wait", "-i", inv, "--timeout", "30"]);
    expect(ok.exitCode, ok.all).toBe(0);
    expect(ok.stdout).toMatch(/^ready: pg2, pg3 stream within/);
    await rig.sh("pg2", "pg_ctlcluster 15 main stop");
    const late = await pgrep(["wait", "pg2", "-i", inv, "--timeout", "2"]);
    expect(late.exitCode, late.all).toBe(5);
    expect(late.stderr).toMatch(/not ready after 2 s: pg2: PostgreSQL is not running/);
    const waiting = pgrepStarted(["wait", "pg2", "-i", inv, "--timeout", "60"]);
    await waiting.waitForOutput(/pg2 stopped/); // it is waiting, and has seen pg2 down
    await rig.sh("pg2", "pg_ctlcluster 15 main start");
    const back = await waiting.done;
    expect(back.exitCode, back.all).toBe(0);
    expect(back.stderr).toMatch(/pg2 stopped\n(.*\n)*pg2 streaming/); // progress lines as the state changes
  });

  it("a standby that cannot be reached: setup converges the others and names it (exit 5); status exits 3", async () => {
    // Wait until nothing listens on port 22 any more, so the test does not race sshd's exit.
    await rig.stopSshd("pg2");
    try {
      const r = await pgrep(["setup", "-i", inv]);
      expect(r.exitCode, r.all).toBe(5);
      expect(r.stderr).toMatch(/^  pg2: left as it is: unreachable: SSH connection (refused|to .* failed|to .* timed out)/m);
      expect(r.stdout).toMatch(/\?\s+pg2\s+standby\s+unreachable/);
      expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg1/);
      expect(r.stderr).toMatch(/^pgrep: cluster rig is not healthy after setup/m);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      const st = await pgrep(["status", "-i", inv]);
      expect(st.exitCode, st.all).toBe(3);
      expect(st.stdout).toMatch(/^  pg2: SSH connection/m);
    } finally {
      await rig.startSshd("pg2");
    }
  });

  it("refuses unknown host keys with their fingerprint, and records them only when told to", async () => {
    const kh = join(rig.dir, "known_hosts.empty");
    writeFileSync(kh, "");
    // The suite's cluster, with an empty known_hosts: status then also finds nothing that differs.
    const file = rig.inventory({ primary: "pg1", file: "unknown-keys.yml", knownHosts: kh, sshUsers: { pg3: "deploy" }, extraTop: APPS });
    const r = await pgrep(["status", "-i", file]);
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stdout).toMatch(/\?\s+pg1\s+primary\s+unreachable/);
    expect(r.stdout).toMatch(/pg1: unknown SSH host key ssh-ed25519 SHA256:[A-Za-z0-9+/]{43} for .*--accept-new-host-keys/);
    expect(readFileSync(kh, "utf8")).toBe("");
    const accepted = await pgrep(["status", "-i", file, "--accept-new-host-keys"]);
    expect(accepted.exitCode, accepted.all).toBe(0);
    expect(readFileSync(kh, "utf8").trim().split("\n")).toHaveLength(3);
    expect((await pgrep(["status", "-i", file])).exitCode).toBe(0);
  });

  it("always refuses a changed host key", async () => {
    // pg2's entry holds pg3's key: what a man in the middle, or a reinstalled host, looks like.
    const real = readFileSync(rig.knownHostsFile, "utf8").split("\n");
    const p2 = `[${rig.host("pg2").sshHost}]:${rig.host("pg2").sshPort}`;
    const p3 = `[${rig.host("pg3").sshHost}]:${rig.host("pg3").sshPort}`;
    const swapped = real.filter((l) => !l.startsWith(p2)).concat(real.filter((l) => l.startsWith(p3)).map((l) => l.replace(p3, p2)));
    const kh = join(rig.dir, "known_hosts.changed");
    writeFileSync(kh, swapped.join("\n"));
    const file = rig.inventory({ primary: "pg1", file: "changed-key.yml", knownHosts: kh });
    const r = await pgrep(["setup", "-i", file, "--accept-new-host-keys"]);
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(/pg2: SSH host key for .* has CHANGED/);
    expect(r.stderr).toMatch(/never accepts a changed key/);
  });

  it("unfollow: a standby leaves and becomes the primary of its own cluster; neither inventory then has anything to do", async () => {
    const fork = join(rig.dir, "analytics.yml");
    expect((await pgrep(["unfollow", "pg1", "-i", inv])).exitCode).toBe(2); // the primary cannot
    const prints = await Promise.all(["pg1", "pg2", "pg3"].map(fingerprint));
    const dry = await pgrep(["unfollow", "pg3", "-i", inv, "--name", "analytics", "--dry-run"]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toMatch(/\[pg3\] promote it on a new timeline of its own/);
    expect(dry.stdout).toMatch(/\[pg1\] drop unused slot pgrep_pg3/);
    expect(dry.stdout).toMatch(/-host    replication    replicator    \S+    scram-sha-256    # pg3\n/);
    expect(dry.stdout).toMatch(/\+cluster: analytics/);
    expect(existsSync(fork)).toBe(false);
    expect(await Promise.all(["pg1", "pg2", "pg3"].map(fingerprint))).toEqual(prints);

    // Its upstream unreachable: refused before the promotion, which could not be undone (exit 3: nothing changed).
    const invBefore = readFileSync(inv, "utf8");
    await rig.stopSshd("pg1");
    try {
      const refused = await pgrep(["unfollow", "pg3", "-i", inv, "--name", "analytics"]);
      expect(refused.exitCode, refused.all).toBe(3);
      expect(refused.stderr).toMatch(/^pgrep: pg1: /m);
    } finally {
      await rig.startSshd("pg1");
    }
    expect(await rig.psql("pg3", "SELECT pg_is_in_recovery()")).toBe("t");
    expect(readFileSync(inv, "utf8")).toBe(invBefore);
    expect(existsSync(fork)).toBe(false);

    // Packets between pg3 and pg1 lost: pg1's walsender never sees pg3 leave (it would hold the slot until
    // wal_sender_timeout); pgrep ends it, and the slot goes.
    const reconnect = await rig.cutBetween("pg1", "pg3");
    const r = await pgrep(["unfollow", "pg3", "-i", inv, "--name", "analytics"]).finally(reconnect);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg1\] ended its walsender for pg3, which had not seen it leave/);
    expect(await rig.psql("pg3", "SELECT pg_is_in_recovery()")).toBe("f");
    const timeline = (h: string) => rig.psql(h, "SELECT timeline_id FROM pg_control_checkpoint()").then(Number);
    await rig.psql("pg3", "CHECKPOINT");
    expect(await timeline("pg3")).toBeGreaterThan(await timeline("pg1"));
    expect(await rig.psql("pg1", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgrep_pg3'")).toBe("0");
    const hbaNames = (h: string) => rig.sh(h, "grep -o '# pg[0-9]$' /etc/postgresql/15/main/pg_hba.conf | sort -u | tr '\\n' ' '");
    expect([await hbaNames("pg1"), await hbaNames("pg2"), await hbaNames("pg3")]).toEqual(["# pg1 # pg2 ", "# pg1 # pg2 ", "# pg3 "]);
    expect(await rig.sh("pg3", "grep -c 'pgrep cluster analytics' /etc/postgresql/15/main/pg_hba.conf")).toBe("2\n");
    expect(readFileSync(inv, "utf8")).not.toMatch(/pg3/);
    // Its writes are its own.
    await rig.psql("pg3", "CREATE TABLE only_in_the_copy (x int)");
    expect(await rig.psql("pg1", "SELECT to_regclass('only_in_the_copy') IS NULL")).toBe("t");
    for (const file of [inv, fork]) {
      const again = await dryRun(rig, ["setup", "-i", file]);
      expect(again.exitCode, again.all).toBe(0);
    }
    expect((await pgrep(["status", "-i", fork])).exitCode).toBe(0);
  });
});
