import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, expect, it } from "vitest";
import { CLI } from "../test/cli.js";
import { Rig } from "../test/rig/rig.js";
import { byHandClone, DATA, emptyStandby, ok, provenance, receivedBytes, resetStandby, subsetInventory } from "./hosts.js";
import { median, seconds, timed } from "./measure.js";

// A standby copied over a limited link (tc on both hosts), on data that compresses like an application's:
// pgrep's default (clone.compress: auto), pgrep uncompressed, and pg_basebackup by hand, uncompressed and
// with the server compressing. Then an rsync copy killed half way and continued. Reports; never fails on
// a number.

const RATE = process.env.PGREP_BENCH_LINK ?? "200mbit";
const ROWS = Number(process.env.PGREP_BENCH_LINK_ROWS ?? 1_800_000);
const RUNS = Number(process.env.PGREP_BENCH_RUNS ?? 3);
const COMMAND = process.env.PGREP_BENCH_COMMAND ?? "npm run bench";
let rig: Rig;

afterAll(async () => {
  await rig?.stop();
});

it(`a copy over a ${RATE} link`, async () => {
  rig = await Rig.start(["l1", "l2"], [], {}, ["NET_ADMIN"]);
  const inv = (file: string, extraTop?: string) => subsetInventory(rig, { primary: "l1", file, hosts: ["l1", "l2"], shareState: "primary.yml", ...(extraTop ? { extraTop } : {}) });
  await ok(["setup", "-i", subsetInventory(rig, { primary: "l1", file: "primary.yml", hosts: ["l1"] })]);
  const auto = inv("auto.yml");
  const none = inv("none.yml", "clone: { compress: none }");
  const rsync = inv("rsync.yml", "clone: { method: rsync, compress: none }");
  await rig.sh("l1", `cat > /tmp/data.sql <<'EOF'\n${readFileSync(join("bench", "realistic-data.sql"), "utf8")}\nEOF`);
  const loadMs = await timed(() => rig.sh("l1", `runuser -u postgres -- psql -Xq -v ON_ERROR_STOP=1 -v rows=${ROWS} -f /tmp/data.sql`));
  // Settled, as a quiet database is: later reads would otherwise set hint bits and change every page.
  await rig.psql("l1", "VACUUM (FREEZE, ANALYZE, PARALLEL 0)"); // parallel workers need more /dev/shm than Docker gives
  await rig.psql("l1", "CHECKPOINT");
  const dbBytes = Number(await rig.psql("l1", "SELECT sum(pg_database_size(oid)) FROM pg_database"));
  await ok(["setup", "-i", none]); // the standby's Debian configuration, which the by-hand copies start from
  await Promise.all(["l1", "l2"].map((h) => rig.limitLink(h, RATE)));

  const runs: Record<string, number[]> = { auto: [], none: [], hand: [], handZstd: [], bridgeAuto: [], bridgeZstd: [] };
  let said = "";
  // One timed copy into `way`'s runs, from a clean primary; `empty` keeps the standby's configuration.
  const copy = async (way: string, fn: () => Promise<unknown>, empty = false) => {
    await (empty ? emptyStandby(rig, "l2") : resetStandby(rig, "l2"));
    await rig.psql("l1", "CHECKPOINT");
    runs[way]!.push(await timed(fn));
  };
  for (let i = 0; i < RUNS; i++) {
    await copy("auto", async () => (said = await ok(["setup", "-i", auto])));
    await copy("none", () => ok(["setup", "-i", none]));
    await copy("hand", () => rig.sh("l2", byHandClone("l2", "l1")), true);
    await copy("handZstd", () => rig.sh("l2", byHandClone("l2", "l1", "--compress=server-zstd")), true);
  }
  const planned = /\[l2\] clone from l1 .*/.exec(said)?.[0] ?? "(not found)";
  const measured = /\[l2\] (compressed|uncompressed)[^\n]*/.exec(said)?.[0] ?? "(not found)";
  expect(measured).toMatch(/compressed with zstd/);

  // Without the limit: the rig's bridge, where the same default leaves the copy uncompressed.
  await Promise.all(["l1", "l2"].map((h) => rig.limitLink(h, null)));
  const zstd = inv("zstd.yml", "clone: { compress: zstd }");
  let bridgeSaid = "";
  for (let i = 0; i < RUNS; i++) {
    await copy("bridgeAuto", async () => (bridgeSaid = await ok(["setup", "-i", auto])));
    await copy("bridgeZstd", () => ok(["setup", "-i", zstd]));
  }
  const bridgeMeasured = /\[l2\] (compressed|uncompressed)[^\n]*/.exec(bridgeSaid)?.[0] ?? "(not found)";
  await Promise.all(["l1", "l2"].map((h) => rig.limitLink(h, RATE)));

  // An rsync copy killed half way (SIGKILL: nothing cleans up), then continued by the next setup.
  const whole = Number((await rig.sh("l1", `du -sb --exclude=pg_wal ${DATA} | cut -f1`)).trim());
  await resetStandby(rig, "l2");
  const rx0 = await receivedBytes(rig, "l2");
  const fullMs = await timed(() => ok(["setup", "-i", rsync]));
  const fullRx = (await receivedBytes(rig, "l2")) - rx0;
  await resetStandby(rig, "l2");
  const killed = execa("node", [CLI, "setup", "-i", rsync], { reject: false });
  await rig.waitFor("half of the copy on l2", async () => Number((await rig.sh("l2", `du -sb ${DATA} 2>/dev/null | cut -f1`)).trim() || 0) >= whole / 2, 600_000);
  killed.kill("SIGKILL");
  await killed;
  await rig.waitFor("rsync on l2 to end", async () => (await rig.sh("l2", "pgrep -x rsync || true")).trim() === "");
  const present = Number((await rig.sh("l2", `du -sb ${DATA} | cut -f1`)).trim());
  const rx1 = await receivedBytes(rig, "l2");
  let resumedOut = "";
  const resumedMs = await timed(async () => (resumedOut = await ok(["setup", "-i", rsync])));
  const resumedRx = (await receivedBytes(rig, "l2")) - rx1;
  const moved = /continued: (\d+) MB received for (\d+) MB of files/.exec(resumedOut);
  expect(moved, resumedOut).not.toBeNull();
  const received = Number(moved![1]) * 2 ** 20;
  const left = whole - present;

  const m = (k: string) => median(runs[k]!);
  const x = (a: number, b: number) => (a / b).toFixed(2);
  const verdict = (ok: boolean) => (ok ? "✓" : "✗ missed");
  const row = (name: string, k: string, target = "") => `| ${name} | ${seconds(m(k))} | ${runs[k]!.map(seconds).join(", ")} | ${x(m(k), m("hand"))} | ${target} |`;
  const { commit, dirty, machine } = provenance();
  const md = `# Benchmarks: a copy over a limited link

Produced by \`${COMMAND}\` (bench/link.bench-run.ts) at commit \`${commit.slice(0, 12)}\`${dirty ? " (with uncommitted changes)" : ""} on ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine}. Two rig hosts (PostgreSQL 15, Debian layout), each sending at most ${RATE} on the
rig's network (\`tc qdisc … tbf rate ${RATE}\` on both: \`Rig.limitLink\`). Data: ${(dbBytes / 2 ** 20).toFixed(0)} MiB in all databases,
${ROWS.toLocaleString("en")} rows of [bench/realistic-data.sql](../bench/realistic-data.sql) (ids, timestamps, statuses, amounts, e-mail
addresses, uuids, notes of 5–24 words, two indexes; made in ${seconds(loadMs)}), frozen and checkpointed. ${RUNS} runs
of each, medians; every copy starts right after a \`CHECKPOINT\` and ends when the standby streams.

| adding one standby | median | runs | × by hand | target |
|---|---|---|---|---|
${row("pgrep setup, clone.compress: auto (the default)", "auto", `≤ 0.5× by hand, uncompressed (at least 2× faster): is ${x(m("auto"), m("hand"))}× ${verdict(m("auto") <= 0.5 * m("hand"))}`)}
${row("pgrep setup, clone.compress: none", "none")}
${row("by hand: pg_basebackup -X stream -c fast + start (uncompressed)", "hand")}
${row("by hand: the same with --compress=server-zstd", "handZstd")}

What the default said, in the plan and when the copy started (last run):

    ${planned}
    ${measured}

On the rig's own bridge, without the limit, the same default said

    ${bridgeMeasured}

| no limit (the rig's bridge) | median | runs | × the default | |
|---|---|---|---|---|
| pgrep setup, clone.compress: auto | ${seconds(m("bridgeAuto"))} | ${runs.bridgeAuto!.map(seconds).join(", ")} | 1.00 | |
| pgrep setup, clone.compress: zstd | ${seconds(m("bridgeZstd"))} | ${runs.bridgeZstd!.map(seconds).join(", ")} | ${x(m("bridgeZstd"), m("bridgeAuto"))} | ${m("bridgeAuto") <= m("bridgeZstd") ? "leaving it uncompressed was the faster choice ✓" : "✗ compressing would have been faster"} |

## An rsync copy killed half way, continued

\`clone: { method: rsync, compress: none }\`. pgrep was killed (SIGKILL) once ${(100 * (whole - left) / whole).toFixed(0)}% of the
${(whole / 2 ** 20).toFixed(0)} MiB the copy sends was on the standby; the next \`pgrep setup\` continued it.

| | bytes | × what was left |
|---|---|---|
| left to copy (the upstream's files less what was on the standby) | ${(left / 2 ** 20).toFixed(0)} MiB | 1.00 |
| rsync received, continuing (its own count) | ${(received / 2 ** 20).toFixed(0)} MiB | ${x(received, left)} — target ≤ 1.1: ${verdict(received <= 1.1 * left)} |
| the standby's interfaces received during that setup | ${(resumedRx / 2 ** 20).toFixed(0)} MiB | ${x(resumedRx, left)} |
| the standby's interfaces received during a whole copy | ${(fullRx / 2 ** 20).toFixed(0)} MiB | ${x(fullRx, whole)} × the whole |

The interfaces also carry what any standby's start brings: the WAL from the start of its segment, the
link measurement of \`clone.compress: auto\` (not here: compress is none) and TCP and SSH framing; a whole
copy shows that share. Time: the continued setup took ${seconds(resumedMs)}, a whole rsync setup ${seconds(fullMs)}
(${x(resumedMs, fullMs)}×).
`;
  writeFileSync(join("docs", "benchmarks-link.md"), md);
  console.log(md);
});
