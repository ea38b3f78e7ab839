import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
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

  const promoteWritable = add("pgrep promote --fence: command start → new primary accepts a write");
  const promoteAll = add("pgrep promote --fence: whole command (incl. re-pointing 2 standbys)");
  const switchover = add("pgrep switchover: whole command (old primary back as a standby)");
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint();
    const cmd = pgrep(["promote", "b2", "-i", inv4, "--fence"]);
    let writableMs = NaN;
    for (;;) {
      const r = await rig.host("b2").container.exec(["runuser", "-u", "postgres", "--", "psql", "-XAtc", "SELECT txid_current()"]);
      if (r.exitCode === 0) {
        writableMs = Number(process.hrtime.bigint() - started) / 1e6;
        break;
      }
    }
    const r = await cmd;
    expect(r.exitCode, r.all).toBe(0);
    promoteWritable.runsMs.push(writableMs);
    promoteAll.runsMs.push(r.ms);
    await ok(["rejoin", "b1", "-i", inv4]);
    switchover.runsMs.push(await timed(() => ok(["switchover", "b1", "-i", inv4])));
  }

  const help = add("pgrep --help, cold start");
  const bareNode = add("node -e 0 (for comparison)");
  for (let i = 0; i < Math.max(RUNS, 10); i++) {
    help.runsMs.push(await timed(() => execa("node", [CLI, "--help"])));
    bareNode.runsMs.push(await timed(() => execa("node", ["-e", "0"])));
  }

  const m = (s: Series) => median(s.runsMs);
  const perHost = (x: Record<string, number>) => Object.entries(x).map(([h, n]) => `${h}: ${n}`).join(", ");
  const targets: [Series, string, boolean][] = [
    [setup1, `≤ 1.15× baseline (is ${(m(setup1) / m(baseline)).toFixed(2)}×)`, m(setup1) <= 1.15 * m(baseline)],
    [setup3, `≤ 1.4× setup with 1 standby (is ${(m(setup3) / m(setup1)).toFixed(2)}×)`, m(setup3) <= 1.4 * m(setup1)],
    [noop, "≤ 1.5 s", m(noop) <= 1500],
    [promoteWritable, "≤ 1.0 s", m(promoteWritable) <= 1000],
    [help, "≤ 150 ms", m(help) <= 150],
  ];
  const target = (s: Series) => targets.find((t) => t[0] === s);
  const rows = series.map((s) => {
    const t = target(s);
    return `| ${s.name} | ${seconds(m(s))} | ${s.runsMs.map(seconds).join(", ")} | ${(m(s) / m(baseline)).toFixed(2)} | ${(m(s) / m(floor)).toFixed(2)} | ${t ? `${t[1]} ${t[2] ? "✓" : "✗ missed"}` : ""} |`;
  });
  const md = `# Benchmarks

Produced by \`${COMMAND}\` (pgbench scale ${SCALE}, ${RUNS} runs each, medians) on a machine with ${cpus().length} cores and
${Math.round(totalmem() / 2 ** 30)} GiB of memory; hosts are containers of the test rig (PostgreSQL 15, Debian layout) on one
Docker network. Data: ${(dbBytes / 2 ** 30).toFixed(2)} GiB in all databases (pgbench -i took ${seconds(pgbenchMs)}).
Baseline and floor were measured in the same run.

| measurement | median | runs | × baseline | × floor | target |
|---|---|---|---|---|---|
${rows.join("\n")}

SSH connections opened per host (counted in each host's sshd log): setup of 4 hosts: ${perHost(setupLogins)};
no-op run: ${perHost(noopLogins)}. Target: exactly 1 per host per run.

## Reading these numbers

- All four hosts share this machine's disk and cores, so clones in parallel compete for the same I/O;
  on separate hosts only the primary's disk and uplink are shared. The floor (a local \`cp -a\`) shows how
  much of the baseline is the copy itself.
- pgrep's setup of one standby pays fixed costs the by-hand baseline does not: on Debian, creating the
  cluster's \`/etc\` configuration with \`pg_createcluster\` (an initdb, about 1 s here), reading every host
  before planning, writing the configuration files one by one, and proving the standby streams. They do not
  grow with the data, so the ratio falls as the database grows.
- Promotion with \`--fence\` includes stopping the old primary cleanly and waiting until the target has
  replayed its shutdown checkpoint, which is what makes it lossless.
`;
  writeFileSync(join("docs", "benchmarks.md"), md);
  writeFileSync(
    join("docs", "benchmarks.json"),
    JSON.stringify({ command: COMMAND, scale: SCALE, runs: RUNS, cores: cpus().length, memoryBytes: totalmem(), dataBytes: dbBytes, series: series.map((s) => ({ ...s, medianMs: m(s) })), sshConnectionsPerHost: { setup: setupLogins, noop: noopLogins } }, null, 2) + "\n",
  );
  console.log(md);
});
