import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, expect, it } from "vitest";
import { CLI, pgrep } from "../test/cli.js";
import { Rig } from "../test/rig/rig.js";
import { lineChart } from "./chart.js";
import { median, seconds, timed, type Series } from "./measure.js";
import { repmgrAddStandby, repmgrPrimary, repmgrPromote, repmgrStandbyReady } from "./repmgr.js";
import { byHandClone, containerCpuMs, DATA, emptyStandby, machineCpuMs, ok, provenance, resetStandby, subsetInventory } from "./hosts.js";

// pgrep against doing it by hand, on the container rig, in one run. Reports; never fails on a number.

const SCALE = Number(process.env.PGREP_BENCH_SCALE ?? 64);
const RUNS = Number(process.env.PGREP_BENCH_RUNS ?? 3);
const COMMAND = process.env.PGREP_BENCH_COMMAND ?? "npm run bench";
let rig: Rig;

afterAll(async () => {
  await rig?.stop();
});

const inventory = (file: string, hosts: string[], upstreams: Record<string, string> = {}) => subsetInventory(rig, { primary: "b1", file, hosts, shareState: "one.yml", upstreams });

const sshLogins = (h: string) => {
  const r = spawnSync("docker", ["logs", rig.host(h).container.getId()], { encoding: "utf8" });
  return (`${r.stdout}${r.stderr}`.match(/Accepted publickey/g) ?? []).length;
};

/**
 * Every copy starts from a clean primary: without this, the first clone after pgbench -i pays for writing
 * out its dirty buffers in the fast checkpoint, and whoever is measured first looks slower.
 */
async function checkpoint(): Promise<void> {
  await rig.psql("b1", "CHECKPOINT");
}

it(`benchmark at pgbench scale ${SCALE}`, async () => {
  const all = ["b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"];
  const hosts = all.slice(0, 4);
  rig = await Rig.start(all);
  const inv1 = inventory("one.yml", ["b1"]);
  await ok(["setup", "-i", inv1]);
  const inv2 = inventory("two.yml", ["b1", "b2"]);
  const inv4 = inventory("four.yml", hosts);
  const pgbenchMs = await timed(() => rig.sh("b1", `runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -i -q -s ${SCALE} postgres >/dev/null 2>&1`));
  const dbBytes = Number(await rig.psql("b1", "SELECT sum(pg_database_size(datname)) FROM pg_database"));
  const series: Series[] = [];
  const add = (name: string) => {
    const s: Series = { name, runsMs: [] };
    series.push(s);
    return s;
  };

  // Adding one standby three ways, taken in turn in every round, so that a disk that is slower for a
  // while (these machines vary) weighs on all three alike: pgrep; by hand, the same clone and start with
  // the configuration pgrep's setup left in place; the peer, configured as its quick-start guide says,
  // only its own commands timed, on the same primary and data.
  // CPU used while a command ran: the whole machine's, and each host's (its container's cgroup).
  const cpuNow = () => ({ machine: machineCpuMs(), hosts: hosts.map((h) => containerCpuMs(rig.host(h).container.getId())) });
  const cpuSince = (a: ReturnType<typeof cpuNow>) => {
    const b = cpuNow();
    return { machine: b.machine - a.machine, hosts: hosts.map((h, i) => [h, b.hosts[i] !== undefined && a.hosts[i] !== undefined ? b.hosts[i]! - a.hosts[i]! : undefined] as const) };
  };
  let promoteCpu: ReturnType<typeof cpuSince> | undefined;
  let repmgrCpu: ReturnType<typeof cpuSince> | undefined;
  const setup1 = add("pgrep setup, primary + 1 standby");
  const baseline = add("baseline: pg_basebackup -X stream -c fast + start, by hand");
  const repmgrAdd = add("repmgr: standby clone --fast-checkpoint + start + standby register, until streaming");
  const repmgrPromoted = add("repmgr standby promote, old primary stopped");
  let setupSaid = "";
  await repmgrPrimary(rig, "b1");
  const ways: (() => Promise<void>)[] = [
    async () => {
      await resetStandby(rig, "b2");
      await checkpoint();
      setup1.runsMs.push(await timed(async () => (setupSaid = await ok(["setup", "-i", inv2]))));
    },
    async () => {
      // The configuration an earlier setup made, in place.
      if (!(await rig.sh("b2", "test -e /etc/postgresql/15/main/postgresql.conf && echo yes || true")).trim()) await ok(["setup", "-i", inv2]);
      await emptyStandby(rig, "b2");
      await checkpoint();
      baseline.runsMs.push(await timed(() => rig.sh("b2", byHandClone("b2", "b1"))));
    },
    async () => {
      await repmgrStandbyReady(rig, "b2", 2);
      await checkpoint();
      repmgrAdd.runsMs.push(await timed(() => repmgrAddStandby(rig, "b2", "b1")));
      await rig.sh("b1", "pg_ctlcluster 15 main stop");
      const cpu0 = cpuNow();
      repmgrPromoted.runsMs.push(await timed(() => repmgrPromote(rig, "b2")));
      repmgrCpu = cpuSince(cpu0);
      await rig.sh("b1", "pg_ctlcluster 15 main start");
    },
  ];
  // Untimed, once: the first copy after pgbench -i is slower, whoever makes it.
  await ok(["setup", "-i", inv2]);
  // Each round starts with the next of the three, so none is always first or last.
  for (let i = 0; i < RUNS; i++) for (let k = 0; k < ways.length; k++) await ways[(i + k) % ways.length]!();
  await resetStandby(rig, "b2");

  const floor = add("floor: cp -a of the primary's data directory on its own host");
  for (let i = 0; i < RUNS; i++) {
    floor.runsMs.push(await timed(() => rig.sh("b1", `cp -a ${DATA} /var/tmp/floor`)));
    await rig.sh("b1", "rm -rf /var/tmp/floor");
  }

  const setup3 = add("pgrep setup, primary + 3 standbys");
  let setupLogins: Record<string, number> = {};
  for (let i = 0; i < RUNS; i++) {
    await Promise.all(["b2", "b3", "b4"].map((h) => resetStandby(rig, h)));
    await checkpoint();
    const before = Object.fromEntries(hosts.map((h) => [h, sshLogins(h)]));
    setup3.runsMs.push(await timed(() => ok(["setup", "-i", inv4])));
    setupLogins = Object.fromEntries(hosts.map((h) => [h, sshLogins(h) - before[h]!]));
  }

  // The same three copies at once by hand: what this one-disk, two-core machine allows.
  const floor3 = add("floor for 3: three pg_basebackup + start at once, by hand");
  for (let i = 0; i < RUNS; i++) {
    await Promise.all(["b2", "b3", "b4"].map((h) => emptyStandby(rig, h)));
    await checkpoint();
    floor3.runsMs.push(await timed(() => Promise.all(["b2", "b3", "b4"].map((h) => rig.sh(h, byHandClone(h, "b1"))))));
  }
  await ok(["setup", "-i", inv4]);

  const noop = add("pgrep setup, no-op re-run on a healthy 4-host cluster");
  let noopLogins: Record<string, number> = {};
  for (let i = 0; i < RUNS; i++) {
    const before = Object.fromEntries(hosts.map((h) => [h, sshLogins(h)]));
    noop.runsMs.push(await timed(() => ok(["setup", "-i", inv4])));
    noopLogins = Object.fromEntries(hosts.map((h) => [h, sshLogins(h) - before[h]!]));
  }

  /**
   * When `host` first takes a write, in ms since `started` (epoch ms): one psql session on the host itself
   * asks every 10 ms, each time in a new transaction, and the server stamps the first write with its own
   * clock (the containers share this machine's). Started, and connected, before the command is.
   */
  const watchWritable = async (host: string): Promise<(started: number) => Promise<number>> => {
    const sql = "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE txid_current()::text || ' ' || (extract(epoch FROM clock_timestamp()) * 1000)::bigint END";
    const watching = rig.host(host).container.exec(["sh", "-c", `printf '%s\\n' "${sql}" '\\watch 0.01' | timeout 120 runuser -u postgres -- psql -XAtq 2>/dev/null | grep -m1 .`]);
    await new Promise((res) => setTimeout(res, 300));
    return async (started) => {
      const r = await watching;
      const at = Number(r.output.trim().split(" ")[1]);
      expect(at, `${host} never took a write: ${r.output}`).toBeGreaterThan(0);
      return at - started;
    };
  };

  const promoteWritable = add("pgrep promote --fence: command start → new primary accepts a write");
  const promoteAll = add("pgrep promote --fence: whole command (incl. re-pointing 2 standbys and the old primary)");
  const frozenWritable = add("pgrep promote --old-primary-is-down, old primary frozen (docker pause): command start → new primary accepts a write");
  const frozenAll = add("pgrep promote --old-primary-is-down, old primary frozen: whole command (incl. re-pointing 2 standbys)");
  const stoppedWritable = add("pgrep promote --old-primary-is-down, old primary down (PostgreSQL stopped, sshd refusing): command start → new primary accepts a write");
  const stoppedAll = add("pgrep promote --old-primary-is-down, old primary down: whole command (incl. re-pointing 2 standbys, seen streaming)");
  const switchover = add("pgrep switchover: whole command (old primary back as a standby)");
  let promoteTrace = "";
  const switchoverPause = add("pgrep switchover: longest pause between acknowledged commits of a steady writer");
  for (let i = 0; i < RUNS; i++) {
    // Healthy: b1 is fenced by pgrep (a clean stop) and follows b2 in the same command.
    let writable = await watchWritable("b2");
    let started = Date.now();
    const cmd = pgrep(["promote", "b2", "-i", inv4, "--fence"]);
    promoteWritable.runsMs.push(await writable(started));
    const r = await cmd;
    expect(r.exitCode, r.all).toBe(0);
    promoteAll.runsMs.push(r.ms);

    // Frozen: b2's machine stops answering; b3 takes over and b1, b4 follow it.
    const b2 = rig.host("b2").container.getId();
    spawnSync("docker", ["pause", b2]);
    writable = await watchWritable("b3");
    started = Date.now();
    const frozen = pgrep(["promote", "b3", "-i", inv4, "--old-primary-is-down"]);
    frozenWritable.runsMs.push(await writable(started));
    const f = await frozen;
    spawnSync("docker", ["unpause", b2]);
    expect(f.exitCode, f.all).toBe(0);
    frozenAll.runsMs.push(f.ms);
    // b2 thaws as a second primary: rejoin rewinds it; then b1 takes over again, under a writer.
    await ok(["rejoin", "b2", "-i", inv4]);
    await rig.psql("b3", "CREATE TABLE IF NOT EXISTS bench_writes (at timestamptz)");
    const acks: number[] = [];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        for (const h of ["b3", "b1"]) {
          const w = await rig.host(h).container.exec(["runuser", "-u", "postgres", "--", "psql", "-XAtc", "INSERT INTO bench_writes VALUES (now())"]);
          if (w.exitCode === 0) {
            acks.push(Date.now());
            break;
          }
        }
      }
    })();
    await new Promise((res) => setTimeout(res, 1000));
    switchover.runsMs.push(await timed(() => ok(["switchover", "b1", "-i", inv4])));
    await new Promise((res) => setTimeout(res, 1000));
    writing = false;
    await writer;
    switchoverPause.runsMs.push(Math.max(...acks.slice(1).map((t, k) => t - acks[k]!)));

    // Down, as for repmgr's promotion above: the old primary's PostgreSQL stopped, and its sshd refusing.
    await rig.sh("b1", "pg_ctlcluster 15 main stop");
    await rig.stopSshd("b1");
    writable = await watchWritable("b2");
    const cpu0 = cpuNow();
    started = Date.now();
    const stopped = pgrep(["promote", "b2", "-i", inv4, "--old-primary-is-down", "--debug"]);
    stoppedWritable.runsMs.push(await writable(started));
    const st = await stopped;
    promoteCpu = cpuSince(cpu0);
    await rig.startSshd("b1");
    expect(st.exitCode, st.all).toBe(0);
    stoppedAll.runsMs.push(st.ms);
    promoteTrace = st.all;
    await ok(["rejoin", "b1", "-i", inv4]);
    await ok(["switchover", "b1", "-i", inv4]);
  }

  // How cost grows: 1, 2, 4 and 8 fresh standbys, 8 as two cascades of 4, and the read-only commands.
  const growth: { standbys: number; cascade: boolean; setupMs: number; noopMs: number; statusMs: number }[] = [];
  const layouts: [number, boolean, Record<string, string>][] = [
    [1, false, {}],
    [2, false, {}],
    [4, false, {}],
    [8, false, {}],
    [8, true, { b3: "b2", b4: "b2", b5: "b2", b7: "b6", b8: "b6", b9: "b6" }],
  ];
  for (const [n, cascade, upstreams] of layouts) {
    const file = inventory(`grow-${n}${cascade ? "-cascade" : ""}.yml`, all.slice(0, n + 1), upstreams);
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await Promise.all(all.slice(1).map((h) => resetStandby(rig, h)));
      runs.push(await timed(() => ok(["setup", "-i", file])));
    }
    const noops: number[] = [];
    const statuses: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      noops.push(await timed(() => ok(["setup", "-i", file])));
      statuses.push(await timed(() => ok(["status", "-i", file])));
    }
    growth.push({ standbys: n, cascade, setupMs: median(runs), noopMs: median(noops), statusMs: median(statuses) });
  }

  const help = add("pgrep --help, cold start");
  const bareNode = add("node -e 0 (for comparison)");
  for (let i = 0; i < Math.max(RUNS, 10); i++) {
    help.runsMs.push(await timed(() => execa("node", [CLI, "--help"])));
    bareNode.runsMs.push(await timed(() => execa("node", ["-e", "0"])));
  }

  const m = (s: Series) => median(s.runsMs);
  const perHost = (x: Record<string, number>) => Object.entries(x).map(([h, n]) => `${h}: ${n}`).join(", ");
  const oneEach = (x: Record<string, number>) => Object.values(x).every((n) => n === 1);
  const x = (a: Series, b: Series) => (m(a) / m(b)).toFixed(2);
  const targets: [Series, string, boolean][] = [
    [setup1, `≤ 0.85× the by-hand copy (is ${x(setup1, baseline)}×) and ≤ 0.85× repmgr (is ${x(setup1, repmgrAdd)}×)`, m(setup1) <= 0.85 * m(baseline) && m(setup1) <= 0.85 * m(repmgrAdd)],
    // This machine allows 1.4× only if three copies at once by hand do: when they take longer, pgrep is held
    // to that floor instead (within 1.2× of it).
    [setup3, `≤ 1.4× setup with 1 standby (is ${x(setup3, setup1)}×), or, where three copies by hand already take more than 1.4× one (they take ${x(floor3, baseline)}×), ≤ 1.2× that floor (is ${x(setup3, floor3)}×)`, m(setup3) <= 1.4 * m(setup1) || (m(floor3) > 1.4 * m(baseline) && m(setup3) <= 1.2 * m(floor3))],
    [noop, "≤ 1.5 s", m(noop) <= 1500],
    [stoppedWritable, `≤ 1.5× repmgr standby promote (is ${x(stoppedWritable, repmgrPromoted)}×)`, m(stoppedWritable) <= 1.5 * m(repmgrPromoted)],
    [stoppedAll, `≤ 2.5× repmgr standby promote (is ${x(stoppedAll, repmgrPromoted)}×)`, m(stoppedAll) <= 2.5 * m(repmgrPromoted)],
    [frozenAll, "well under 10 s: ≤ 7 s", m(frozenAll) <= 7000],
    [help, `≤ node -e 0 + 50 ms (is + ${(m(help) - m(bareNode)).toFixed(0)} ms)`, m(help) <= m(bareNode) + 50],
  ];
  const target = (s: Series) => targets.find((t) => t[0] === s);
  const rows = series.map((s) => {
    const t = target(s);
    return `| ${s.name} | ${seconds(m(s))} | ${s.runsMs.map(seconds).join(", ")} | ${(m(s) / m(baseline)).toFixed(2)} | ${(m(s) / m(floor)).toFixed(2)} | ${t ? `${t[1]} ${t[2] ? "✓" : "✗ missed"}` : ""} |`;
  });
  const { commit, dirty, machine } = provenance();
  const md = `# Benchmarks

Produced by \`${COMMAND}\` at commit \`${commit.slice(0, 12)}\`${dirty ? " (with uncommitted changes)" : ""} on ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine}. Hosts are containers of the test rig (PostgreSQL 15, Debian layout) on one Docker
network. Data: ${(dbBytes / 2 ** 30).toFixed(2)} GiB in all databases (pgbench scale ${SCALE}; pgbench -i took ${seconds(pgbenchMs)}).
${RUNS} runs of each, medians; baseline and floor were measured in the same run (pgrep, the by-hand copy and repmgr adding one
standby in turn, each round starting with the next of them, after one untimed copy).

| measurement | median | runs | × baseline | × floor | target |
|---|---|---|---|---|---|
${rows.join("\n")}

## How cost grows

Each point is the median of ${RUNS} runs on fresh standbys (setup) or on the converged cluster (no-op
re-run, status). "Two cascades of 4": two standbys of the primary, each the upstream of three more.

| standbys | layout | setup | no-op setup | status (hosts) |
|---|---|---|---|---|
${growth.map((g) => `| ${g.standbys} | ${g.cascade ? "two cascades of 4" : "all from the primary"} | ${seconds(g.setupMs)} | ${seconds(g.noopMs)} | ${seconds(g.statusMs)} (${g.standbys + 1}) |`).join("\n")}

![Setup time by number of standbys](benchmarks-setup-growth.svg)

![No-op setup and status by number of hosts](benchmarks-read-growth.svg)

SSH connections opened per host (counted in each host's sshd log), target exactly 1 per host per run:
setup of 4 hosts: ${perHost(setupLogins)} ${oneEach(setupLogins) ? "✓" : "✗ missed"}; no-op run: ${perHost(noopLogins)} ${oneEach(noopLogins) ? "✓" : "✗ missed"}.

## Where a promotion's time goes

\`pgrep promote --old-primary-is-down\` with the old primary down, its last run above, as its \`--debug\` log stamps
it (seconds since pgrep's own modules loaded; node's start and the loading come before, about
\`--help\`'s ${seconds(m(help))}):

${promotionTimeline(promoteTrace)}

CPU time used while it ran (its last run; this machine has ${cpus().length} cores): ${cpuText(promoteCpu)}. repmgr's
\`standby promote\` (its last run, the old primary stopped): ${cpuText(repmgrCpu)}.

## Reading these numbers

- What \`clone.compress: auto\` (the default) decided when adding one standby:
  \`${/\[b2\] (un)?compressed[^\n]*/.exec(setupSaid)?.[0] ?? "(not found)"}\`. Over a limited link it compresses: see
  [benchmarks-link.md](benchmarks-link.md).

- All hosts share this machine's disk and cores, so clones in parallel compete for the same I/O; on
  separate hosts only the primary's disk and uplink are shared. The floor (a local \`cp -a\`) shows how
  much of the baseline is the copy itself; "floor for 3" is the same three copies made at once by hand.
- Writing the copy to disk is much of the time. The by-hand baseline and repmgr sync it twice:
  \`pg_basebackup\` fsyncs every file, and the standby's first start (which begins like crash recovery)
  syncs the data directory again. pgrep copies with \`--no-sync\` and keeps its copy marker until that
  first start has synced it, so a copy lost to a power cut in between is copied again.
- The by-hand baseline and repmgr start the standby with \`pg_ctlcluster\`, which returns only after
  probing the running server three times, 0.5 s apart (about 2 s); pgrep starts it the same way but goes
  on as soon as the server answers, and then waits until it is seen streaming, as they do.
- pgrep's setup of one standby pays costs the baseline does not: every host is read and locked before
  planning, on Debian the cluster's \`/etc\` configuration is made by \`pg_createcluster\` (beside the
  copy), the configuration files are written (each its own round trip), and the standby must be seen
  streaming. They do not grow with the data.
- repmgr is set up on the same primary as its quick-start guide says (a superuser \`repmgr\` and its
  database, trust in pg_hba.conf from the hosts' network, a repmgr.conf per node); only its commands are
  timed. Its promotion promotes one standby; pgrep's also re-points the other standbys and sees them
  stream, so the whole commands do different amounts of work.
- Promotion with \`--fence\` includes stopping the old primary cleanly and waiting until the target has
  replayed its shutdown checkpoint, which is what makes it lossless; the old primary then follows.
- Each copy starts right after a \`CHECKPOINT\` on the primary, whoever makes it. "Accepts a write" is
  stamped by the new primary's own clock: a psql session on that host, connected before the command
  starts, asks for a transaction id every 10 ms.
- With the old primary frozen (\`docker pause\`: its TCP port still accepts, sshd never answers), the
  command first waits out \`ssh.connect_timeout\` (3 s) once; the dials run in parallel and the frozen
  host is not dialled again.
`;
  writeFileSync(join("docs", "benchmarks.md"), md);
  const flat = growth.filter((g) => !g.cascade);
  const cascade = growth.find((g) => g.cascade);
  writeFileSync(
    join("docs", "benchmarks-setup-growth.svg"),
    lineChart(`pgrep setup: seconds by number of standbys (pgbench scale ${SCALE})`, "standbys", [
      { name: "all from the primary", colour: "#1f77b4", points: flat.map((g) => [g.standbys, g.setupMs / 1000]) },
      ...(cascade ? [{ name: "two cascades of 4", colour: "#ff7f0e", points: [[cascade.standbys, cascade.setupMs / 1000]] as [number, number][] }] : []),
      { name: "by hand, 1 standby", colour: "#999999", points: [[1, m(baseline) / 1000]] },
      { name: "repmgr, 1 standby", colour: "#2ca02c", points: [[1, m(repmgrAdd) / 1000]] },
    ]),
  );
  writeFileSync(
    join("docs", "benchmarks-read-growth.svg"),
    lineChart("no-op setup and status: seconds by number of hosts", "hosts", [
      { name: "setup with nothing to do", colour: "#1f77b4", points: flat.map((g) => [g.standbys + 1, g.noopMs / 1000]) },
      { name: "status", colour: "#2ca02c", points: flat.map((g) => [g.standbys + 1, g.statusMs / 1000]) },
    ]),
  );
  writeFileSync(
    join("docs", "benchmarks.json"),
    JSON.stringify({ command: COMMAND, commit, dirty, machine, scale: SCALE, runs: RUNS, dataBytes: dbBytes, growth, series: series.map((s) => ({ ...s, medianMs: m(s), target: target(s)?.[1], met: target(s)?.[2] })), sshConnectionsPerHost: { setup: setupLogins, noop: noopLogins, met: oneEach(setupLogins) && oneEach(noopLogins) } }, null, 2) + "\n",
  );
  console.log(md);
});

/** The steps of a promotion's --debug log that show where its time went, as a table. */
function promotionTimeline(trace: string): string {
  const at = (re: RegExp, last = false) => {
    const hits = trace.split("\n").filter((l) => re.test(l)).map((l) => Number(/\+(\d+\.\d+)s/.exec(l)?.[1]));
    return last ? hits.at(-1) : hits[0];
  };
  const marks: [string, number | undefined][] = [
    ["first host dialled", at(/dialling/)],
    ["every answering host connected (SSH)", at(/connected in/, true)],
    ["cluster lock held on every host (the first look read beside it)", at(/cluster lock held/)],
    ["target and old primary read, the others' positions compared", at(/observed the hosts the command acts on first/)],
    ["promoted: the new primary takes a write", at(/✓ promoted/)],
    ["the inventory records the new roles", at(/Recorded in/)],
    ["the last standby seen streaming from it", at(/✓ streaming from/, true)],
    ["the status table read and shown, lock released", at(/lock released/)],
  ];
  return ["| step | at | since the one before |", "|---|---|---|", ...marks.map(([what, t], i) => `| ${what} | ${t === undefined ? "?" : `${t.toFixed(3)} s`} | ${i && t !== undefined && marks[i - 1]![1] !== undefined ? `${Math.round((t - marks[i - 1]![1]!) * 1000)} ms` : ""} |`)].join("\n");
}

/** The CPU a command used: on the whole machine, and how much of it on each host (its container). */
function cpuText(c: { machine: number; hosts: (readonly [string, number | undefined])[] } | undefined): string {
  if (!c) return "(not measured)";
  const known = c.hosts.filter((x): x is readonly [string, number] => x[1] !== undefined);
  const inHosts = known.reduce((a, [, ms]) => a + ms, 0);
  if (!known.length) return `${seconds(c.machine)} on the whole machine`;
  return `${seconds(c.machine)} on the whole machine, ${seconds(inHosts)} of it on the hosts (${known.map(([h, ms]) => `${h} ${seconds(ms)}`).join(", ")}); the rest is the command itself, Docker's port forwarding and whatever else this machine ran`;
}
