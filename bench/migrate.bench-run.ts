import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { afterAll, expect, it } from "vitest";
import { pgrep } from "../test/cli.js";
import { inDb, migrationInventory, writeAppPassword } from "../test/rig/migration.js";
import { Rig, UPGRADE_IMAGE } from "../test/rig/rig.js";
import { seconds, timed } from "./measure.js";

// pgrep migrate (13 → 15 onto other hosts, two standbys on each side) under a steady writer: the longest
// pause between two of its acknowledged commits at the cut-over and at the rollback, every table checked,
// no acknowledged write lost. One run, one rig. Reports; never fails on a number.

const SCALE = Number(process.env.PGREP_BENCH_SCALE ?? 64);
const COMMAND = process.env.PGREP_BENCH_COMMAND ?? "npm run bench";
let rig: Rig;

afterAll(async () => {
  await rig?.stop();
});

// A loop on o3 that inserts through a libpq list of both primaries, logging "id epoch-ms" per acknowledged commit.
const WRITER = `while :; do r=$(PGPASSWORD="$(cat /tmp/app.password)" psql -XAtq "postgresql://app@o1,n1/appdb?target_session_attrs=read-write&connect_timeout=2" -c "INSERT INTO acks (at) VALUES (now()) RETURNING id" 2>/dev/null) && echo "$r $(date +%s%3N)"; done`;

async function underWriter(run: () => Promise<string>): Promise<{ out: string; longestMs: number; acked: number[] }> {
  await rig.sh("o3", `printf '%s\\n' '${WRITER.replaceAll("'", "'\\''")}' > /tmp/writer.sh; : > /tmp/acks.log; nohup sh /tmp/writer.sh > /tmp/acks.log 2>/dev/null &`);
  const lines = async () => (await rig.sh("o3", "cat /tmp/acks.log")).trim().split("\n").filter(Boolean).map((l) => l.split(" ").map(Number) as [number, number]);
  await rig.waitFor("the writer's first commits", async () => (await lines()).length >= 50, 60_000);
  const out = await run();
  const after = (await lines()).length;
  await rig.waitFor("the writer's commits after it", async () => (await lines()).length >= after + 50, 60_000);
  await rig.sh("o3", "pkill -f 'sh /tmp/[w]riter.sh'; true");
  const acks = await lines();
  const longestMs = Math.max(...acks.slice(1).map((a, i) => a[1] - acks[i]![1]));
  return { out, longestMs, acked: acks.map((a) => a[0]) };
}

it(`migration at pgbench scale ${SCALE}`, async () => {
  rig = await Rig.start(["o1", "o2", "o3", "n1", "n2", "n3"], [], {}, [], UPGRADE_IMAGE);
  await writeAppPassword(rig);
  const oldInv = migrationInventory(rig, "old", 13, [["o1", "primary"], ["o2", "standby"], ["o3", "standby"]]);
  const newInv = migrationInventory(rig, "new", 15, [["n1", "primary"], ["n2", "standby"], ["n3", "standby"]]);
  expect((await pgrep(["setup", "-i", oldInv])).exitCode).toBe(0);
  await rig.sh("o1", `runuser -u postgres -- /usr/lib/postgresql/13/bin/pgbench -i -q -s ${SCALE} appdb >/dev/null 2>&1`);
  // pgbench_history has no key; the writer's table is the application's.
  await inDb(rig, "o1", "ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY; CREATE TABLE acks (id bigserial PRIMARY KEY, at timestamptz NOT NULL); ALTER TABLE acks OWNER TO app");
  const rows = Number(await inDb(rig, "o1", "SELECT count(*) FROM pgbench_accounts"));
  const dbBytes = Number(await rig.psql("o1", "SELECT pg_database_size('appdb')"));
  const nodeMs = Math.min(...(await Promise.all([0, 1, 2].map(() => timed(async () => spawnSync("node", ["-e", "0"]))))));

  let startOut = "";
  const startMs = await timed(async () => {
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv]);
    startOut = r.all;
    expect(r.exitCode, r.all).toBe(0);
  });
  const cut = await underWriter(async () => {
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--cutover", "--check", "after", "--stream-timeout", "600", ...(process.env.PGREP_BENCH_DEBUG ? ["--debug"] : [])]);
    expect(r.exitCode, r.all).toBe(0);
    return r.all;
  });
  const onNew = new Set((await inDb(rig, "n1", "SELECT string_agg(id::text, ',') FROM acks")).split(",").map(Number));
  const lostAtCut = cut.acked.filter((id) => !onNew.has(id)).length;
  const back = await underWriter(async () => {
    const r = await pgrep(["migrate", "-i", oldInv, "--to", newInv, "--rollback", "--stream-timeout", "600"]);
    expect(r.exitCode, r.all).toBe(0);
    return r.all;
  });
  const onOld = new Set((await inDb(rig, "o1", "SELECT string_agg(id::text, ',') FROM acks")).split(",").map(Number));
  const lostAtBack = [...cut.acked, ...back.acked].filter((id) => !onOld.has(id)).length;
  const refused = (out: string) => Number(/Writes were refused for ([\d.]+) s/.exec(out)?.[1]);
  const checkedRe = /(\d+) table\(s\), (\d+) rows, the same on both sides.*\(checked in ([\d.]+) s\)/;
  const checked = checkedRe.exec(cut.out);
  const backChecked = checkedRe.exec(back.out);

  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout.trim();
  const commit = sh("git", ["rev-parse", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"]) !== "";
  const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; Linux ${release()}; Node ${process.version}`;
  const verdict = (ok: boolean) => (ok ? "✓" : "✗ missed");
  const md = `# Benchmark: migration onto other hosts (blue/green, logical replication)

Produced by \`${COMMAND}\` (bench/migrate.bench-run.ts) at commit \`${commit.slice(0, 12)}\`${dirty ? " (with uncommitted changes)" : ""} on ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine}; \`node -e 0\` took ${seconds(nodeMs)}. Six containers of the upgrade rig on one Docker
network (all on this machine's two cores and one disk): o1 and two standbys on 13, migrated onto n1 and
two standbys on 15 by \`pgrep migrate\`. Data: appdb ${(dbBytes / 2 ** 30).toFixed(2)} GiB (pgbench scale ${SCALE}, ${rows} accounts).
The writer: a loop on o3 inserting one row per connection through
\`postgresql://app@o1,n1/appdb?target_session_attrs=read-write\`, each acknowledged id logged with the host's clock. One run.

| measurement | value | target |
|---|---|---|
| start: set up the new cluster, copy roles, schema and every row, until every table is copied | ${seconds(startMs)} | |
| cut-over (\`--check after\`): writes refused on o1 until n1 takes them (printed by pgrep) | ${refused(cut.out).toFixed(1)} s | |
| cut-over: longest pause between two of the writer's acknowledged commits | ${seconds(cut.longestMs)} | ≤ 5 s ${verdict(cut.longestMs <= 5000)} |
| cut-over: tables and rows checked on both sides, as both were in the pause (snapshots), after it | ${checked ? `${checked[1]} tables, ${checked[2]} rows, in ${checked[3]} s` : "?"} | every table ${verdict(!!checked)} |
| acknowledged commits missing on n1 after the cut-over | ${lostAtCut} of ${cut.acked.length} | 0 ${verdict(lostAtCut === 0)} |
| rollback (\`--check in-pause\`, the default: every row checked while writes are refused): writes refused on n1 until o1 takes them again | ${refused(back.out).toFixed(1)} s | |
| rollback: longest pause between two acknowledged commits | ${seconds(back.longestMs)} | |
| rollback: tables and rows checked in the pause | ${backChecked ? `${backChecked[1]} tables, ${backChecked[2]} rows, in ${backChecked[3]} s` : "?"} | |
| acknowledged commits (both phases) missing on o1 after the rollback | ${lostAtBack} of ${cut.acked.length + back.acked.length} | 0 ${verdict(lostAtBack === 0)} |

With \`--check in-pause\` (the rollback here) most of the pause is the check of every row, run on both
primaries at once; here both share this machine's two cores with the writer and four other servers. Alone in one container of the same image, the check of
pgbench_accounts at this scale took 3.5 s (measured by hand with psql on PostgreSQL 13, two at once: 3.7 s
each), which is what each primary spends on hosts of their own.
`;
  writeFileSync(new URL("../docs/benchmarks-migrate.md", import.meta.url), md);
  console.log(md);
  console.log(startOut.split("\n").slice(-6).join("\n"));
  if (process.env.PGREP_BENCH_DEBUG) console.log(cut.out);
});
