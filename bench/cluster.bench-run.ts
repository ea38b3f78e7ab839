import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, expect, it } from "vitest";
import { CLI, pgrep } from "../test/cli.js";
import { Rig } from "../test/rig/rig.js";
import { median, seconds, timed, type Series } from "./measure.js";

// pgrep against doing it by hand, on the container rig, in one run. Reports; never fails on a number.

const SCALE = Number(process.env.PGREP_BENCH_SCALE ?? 64);
const RUNS = Number(process.env.PGREP_BENCH_RUNS ?? 3);
const COMMAND = process.env.PGREP_BENCH_COMMAND ?? "npm run bench";
const DATA = "/var/lib/postgresql/15/main";
let rig: Rig;

afterAll(async () => {
  await rig?.stop();
});

/** The rig's inventory for a subset of the hosts (b1 is the primary). */
function inventory(file: string, hosts: string[]): string {
  const path = rig.inventory({ primary: "b1", file });
  const [head, body] = readFileSync(path, "utf8").split("hosts:\n");
  const blocks = body!.split(/\n(?=  - name: )/).filter((b) => hosts.some((h) => b.startsWith(`  - name: ${h}\n`)));
  writeFileSync(path, `${head}hosts:\n${blocks.join("\n").replace(/\n*$/, "\n")}`);
  return path;
}

const sshLogins = (h: string) => {
  const r = spawnSync("docker", ["logs", rig.host(h).container.getId()], { encoding: "utf8" });
  return (`${r.stdout}${r.stderr}`.match(/Accepted publickey/g) ?? []).length;
};

async function resetStandby(h: string): Promise<void> {
  await rig.sh(h, `pg_dropcluster --stop 15 main >/dev/null 2>&1; rm -rf ${DATA}; true`);
}

async function ok(args: string[]): Promise<void> {
  const r = await pgrep(args);
  expect(r.exitCode, r.all).toBe(0);
}

it(`benchmark at pgbench scale ${SCALE}`, async () => {
  const hosts = ["b1", "b2", "b3", "b4"];
  rig = await Rig.start(hosts);
  const inv1 = inventory("one.yml", ["b1"]);
  const inv2 = inventory("two.yml", ["b1", "b2"]);
  const inv4 = inventory("four.yml", hosts);
  await ok(["setup", "-i", inv1]);
  // One password for the three inventories of the same cluster.
  for (const f of [inv2, inv4]) spawnSync("cp", ["-r", inv1.replace(/\.yml$/, ".state"), f.replace(/\.yml$/, ".state")]);
  const pgbenchMs = await timed(() => rig.sh("b1", `runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -i -q -s ${SCALE} postgres >/dev/null 2>&1`));
  const dbBytes = Number(await rig.psql("b1", "SELECT sum(pg_database_size(datname)) FROM pg_database"));
  const series: Series[] = [];
  const add = (name: string) => {
    const s: Series = { name, runsMs: [] };
    series.push(s);
    return s;
  };

  const setup1 = add("pgrep setup, primary + 1 standby");
  for (let i = 0; i < RUNS; i++) {
    await resetStandby("b2");
    setup1.runsMs.push(await timed(() => ok(["setup", "-i", inv2])));
  }

  // By hand: the same clone and start, with the configuration already in place.
  const baseline = add("baseline: pg_basebackup -X stream -c fast + start, by hand");
  for (let i = 0; i < RUNS; i++) {
    await rig.sh("b2", `pg_ctlcluster 15 main stop; rm -rf ${DATA}/*`);
    baseline.runsMs.push(
      await timed(() =>
        rig.sh(
          "b2",
          `runuser -u postgres -- pg_basebackup -D ${DATA} -X stream -c fast --no-password -d 'host=b1 user=replicator passfile=/var/lib/postgresql/.pgpass' && ` +
            `touch ${DATA}/standby.signal && chown postgres: ${DATA}/standby.signal && pg_ctlcluster 15 main start && ` +
            `until [ "$(runuser -u postgres -- psql -XAtc "SELECT status FROM pg_stat_wal_receiver")" = streaming ]; do sleep 0.05; done`,
        ),
      ),
    );
  }

  const floor = add("floor: cp -a of the primary's data directory on its own host");
  for (let i = 0; i < RUNS; i++) {
    floor.runsMs.push(await timed(() => rig.sh("b1", `cp -a ${DATA} /var/tmp/floor`)));
    await rig.sh("b1", "rm -rf /var/tmp/floor");
  }

  const setup3 = add("pgrep setup, primary + 3 standbys");
  let setupLogins: Record<string, number> = {};
  for (let i = 0; i < RUNS; i++) {
    await Promise.all(["b2", "b3", "b4"].map(resetStandby));
    const before = Object.fromEntries(hosts.map((h) => [h, sshLogins(h)]));
    setup3.runsMs.push(await timed(() => ok(["setup", "-i", inv4])));
    setupLogins = Object.fromEntries(hosts.map((h) => [h, sshLogins(h) - before[h]!]));
  }

  const noop = add("pgrep setup, no-op re-run on a healthy 4-host cluster");
  let noopLogins: Record<string, number> = {};
  for (let i = 0; i < RUNS; i++) {
    const before = Object.fromEntries(hosts.map((h) => [h, sshLogins(h)]));
    noop.runsMs.push(await timed(() => ok(["setup", "-i", inv4])));
    noopLogins = Object.fromEntries(hosts.map((h) => [h, sshLogins(h) - before[h]!]));
  }

  /** How long from `started` until `host` takes a write (polled from the test process). */
  const writableAfter = async (host: string, started: bigint): Promise<number> => {
    for (;;) {
      const r = await rig.host(host).container.exec(["runuser", "-u", "postgres", "--", "psql", "-XAtc", "SELECT txid_current()"]);
      if (r.exitCode === 0) return Number(process.hrtime.bigint() - started) / 1e6;
    }
  };

  const promoteWritable = add("pgrep promote --fence: command start → new primary accepts a write");
  const promoteAll = add("pgrep promote --fence: whole command (incl. re-pointing 2 standbys and the old primary)");
  const frozenWritable = add("pgrep promote --old-primary-is-down, old primary frozen (docker pause): command start → new primary accepts a write");
  const frozenAll = add("pgrep promote --old-primary-is-down, old primary frozen: whole command (incl. re-pointing 2 standbys)");
  const switchover = add("pgrep switchover: whole command (old primary back as a standby)");
  const switchoverPause = add("pgrep switchover: longest pause between acknowledged commits of a steady writer");
  for (let i = 0; i < RUNS; i++) {
    // Healthy: b1 is fenced by pgrep (a clean stop) and follows b2 in the same command.
    let started = process.hrtime.bigint();
    const cmd = pgrep(["promote", "b2", "-i", inv4, "--fence"]);
    promoteWritable.runsMs.push(await writableAfter("b2", started));
    const r = await cmd;
    expect(r.exitCode, r.all).toBe(0);
    promoteAll.runsMs.push(r.ms);

    // Frozen: b2's machine stops answering; b3 takes over and b1, b4 follow it.
    const b2 = rig.host("b2").container.getId();
    spawnSync("docker", ["pause", b2]);
    started = process.hrtime.bigint();
    const frozen = pgrep(["promote", "b3", "-i", inv4, "--old-primary-is-down"]);
    frozenWritable.runsMs.push(await writableAfter("b3", started));
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
  const targets: [Series, string, boolean][] = [
    [setup1, `≤ 1.15× baseline (is ${(m(setup1) / m(baseline)).toFixed(2)}×)`, m(setup1) <= 1.15 * m(baseline)],
    [setup3, `≤ 1.4× setup with 1 standby (is ${(m(setup3) / m(setup1)).toFixed(2)}×)`, m(setup3) <= 1.4 * m(setup1)],
    [noop, "≤ 1.5 s", m(noop) <= 1500],
    [promoteWritable, "≤ 1.0 s", m(promoteWritable) <= 1000],
    [frozenAll, "well under 10 s: ≤ 7 s", m(frozenAll) <= 7000],
    [help, "≤ 150 ms", m(help) <= 150],
  ];
  const target = (s: Series) => targets.find((t) => t[0] === s);
  const rows = series.map((s) => {
    const t = target(s);
    return `| ${s.name} | ${seconds(m(s))} | ${s.runsMs.map(seconds).join(", ")} | ${(m(s) / m(baseline)).toFixed(2)} | ${(m(s) / m(floor)).toFixed(2)} | ${t ? `${t[1]} ${t[2] ? "✓" : "✗ missed"}` : ""} |`;
  });
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout.trim();
  const commit = sh("git", ["rev-parse", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no"]) !== "";
  const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; Linux ${release()}; Docker ${sh("docker", ["version", "--format", "{{.Server.Version}}"])}; Node ${process.version}`;
  const md = `# Benchmarks

Produced by \`${COMMAND}\` at commit \`${commit.slice(0, 12)}\`${dirty ? " (with uncommitted changes)" : ""} on ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine}. Hosts are containers of the test rig (PostgreSQL 15, Debian layout) on one Docker
network. Data: ${(dbBytes / 2 ** 30).toFixed(2)} GiB in all databases (pgbench scale ${SCALE}; pgbench -i took ${seconds(pgbenchMs)}).
${RUNS} runs of each, medians; baseline and floor were measured in the same run.

| measurement | median | runs | × baseline | × floor | target |
|---|---|---|---|---|---|
${rows.join("\n")}

SSH connections opened per host (counted in each host's sshd log), target exactly 1 per host per run:
setup of 4 hosts: ${perHost(setupLogins)} ${oneEach(setupLogins) ? "✓" : "✗ missed"}; no-op run: ${perHost(noopLogins)} ${oneEach(noopLogins) ? "✓" : "✗ missed"}.

## Reading these numbers

- All four hosts share this machine's disk and cores, so clones in parallel compete for the same I/O;
  on separate hosts only the primary's disk and uplink are shared. The floor (a local \`cp -a\`) shows how
  much of the baseline is the copy itself.
- pgrep's setup of one standby pays costs the by-hand baseline does not: on Debian the cluster's \`/etc\`
  configuration is made by \`pg_createcluster\`, every host is read before planning, the configuration
  is written file by file, and the standby must be seen streaming. They do not grow with the data.
- Promotion with \`--fence\` includes stopping the old primary cleanly and waiting until the target has
  replayed its shutdown checkpoint, which is what makes it lossless; the old primary then follows.
- With the old primary frozen (\`docker pause\`: its TCP port still accepts, sshd never answers), the
  command first waits out \`ssh.connect_timeout\` (3 s) once; the dials run in parallel and the frozen
  host is not dialled again.
`;
  writeFileSync(join("docs", "benchmarks.md"), md);
  writeFileSync(
    join("docs", "benchmarks.json"),
    JSON.stringify({ command: COMMAND, commit, dirty, machine, scale: SCALE, runs: RUNS, dataBytes: dbBytes, series: series.map((s) => ({ ...s, medianMs: m(s), target: target(s)?.[1], met: target(s)?.[2] })), sshConnectionsPerHost: { setup: setupLogins, noop: noopLogins, met: oneEach(setupLogins) && oneEach(noopLogins) } }, null, 2) + "\n",
  );
  console.log(md);
});
