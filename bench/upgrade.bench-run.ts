import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { afterAll, expect, it } from "vitest";
import { pgrep } from "../test/cli.js";
import { Rig, UPGRADE_IMAGE } from "../test/rig/rig.js";
import { seconds, timed } from "./measure.js";

// pgrep upgrade (13 → 15 in place, two standbys) against what the other tools do with a standby after
// pg_upgrade: copy it again (pg_basebackup of the new primary, by hand on the host). One run, one rig.
// Reports; never fails on a number.

const SCALE = Number(process.env.PGREP_BENCH_SCALE ?? 64);
const COMMAND = process.env.PGREP_BENCH_COMMAND ?? "npm run bench";
let rig: Rig;

afterAll(async () => {
  await rig?.stop();
});

it(`major upgrade at pgbench scale ${SCALE}`, async () => {
  rig = await Rig.start(["u1", "u2", "u3"], [], {}, [], UPGRADE_IMAGE);
  const inv = rig.inventory({ primary: "u1", major: 13 });
  expect((await pgrep(["setup", "-i", inv])).exitCode).toBe(0);
  const pgbenchMs = await timed(() => rig.sh("u1", `runuser -u postgres -- /usr/lib/postgresql/13/bin/pgbench -i -q -s ${SCALE} postgres >/dev/null 2>&1`));
  await rig.waitReplayed("u1", "u2", 600_000);
  await rig.waitReplayed("u1", "u3", 600_000);
  await rig.psql("u1", "CHECKPOINT");
  const dbBytes = Number(await rig.psql("u1", "SELECT sum(pg_database_size(oid)) FROM pg_database"));
  const before = await rig.psql("u1", "SELECT md5(string_agg(a::text, ',' ORDER BY aid)) FROM pgbench_accounts a");
  const nodeMs = Math.min(...(await Promise.all([0, 1, 2].map(() => timed(async () => spawnSync("node", ["-e", "0"]))))));

  let out = "";
  const wholeMs = await timed(async () => {
    const r = await pgrep(["upgrade", "-i", inv, "--major", "15"]);
    out = r.all;
    expect(r.exitCode, r.all).toBe(0);
  });
  const refused = Number(/writes were refused for ([\d.]+) s/.exec(out)?.[1]);
  const copies = [...out.matchAll(/\[(u\d)\] ✓ rsync from u1: ([\d.]+) MB sent, of ([\d.]+) MB.*\(([\d.]+) s\)/g)].map((m) => ({ host: m[1]!, sentMb: Number(m[2]), totalMb: Number(m[3]), percent: (100 * Number(m[2]) * 1048576) / dbBytes, ms: Number(m[4]) * 1000 }));
  const after = await rig.psql("u3", "SELECT md5(string_agg(a::text, ',' ORDER BY aid)) FROM pgbench_accounts a");
  expect(after).toBe(before);

  // The peer: the same standby copied again from the new primary, by hand on the host, until it streams.
  await rig.sh("u3", "pg_ctlcluster 15 main stop && rm -rf /var/lib/postgresql/15/main");
  const recloneMs = await timed(() =>
    rig.sh(
      "u3",
      "runuser -u postgres -- pg_basebackup -D /var/lib/postgresql/15/main -X stream -c fast -S pgrep_u3 --no-password -d 'host=u1 user=replicator passfile=/var/lib/postgresql/.pgpass application_name=u3' && " +
        "touch /var/lib/postgresql/15/main/standby.signal && chown postgres: /var/lib/postgresql/15/main/standby.signal && pg_ctlcluster 15 main start && " +
        `until [ "$(runuser -u postgres -- psql -XAtc "SELECT status FROM pg_stat_wal_receiver")" = streaming ]; do sleep 0.05; done`,
    ),
  );
  const copy = copies.find((c) => c.host === "u3");
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout.trim();
  const commit = sh("git", ["rev-parse", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"]) !== "";
  const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; Linux ${release()}; Node ${process.version}`;
  const verdict = (ok: boolean) => (ok ? "✓" : "✗ missed");
  const md = `# Benchmark: major upgrade in place

Produced by \`${COMMAND}\` (bench/upgrade.bench-run.ts) at commit \`${commit.slice(0, 12)}\`${dirty ? " (with uncommitted changes)" : ""} on ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine}; \`node -e 0\` took ${seconds(nodeMs)}. Three containers of the upgrade rig (bookworm,
PostgreSQL 13 from bullseye beside 15, Debian layout) on one Docker network: a primary and two standbys
on 13, upgraded to 15 by \`pgrep upgrade --major 15\`. Data: ${(dbBytes / 2 ** 30).toFixed(2)} GiB (pgbench scale ${SCALE}, pgbench -i took ${seconds(pgbenchMs)}). One run.

| measurement | value | target |
|---|---|---|
| writes refused (the primary's stop to its start on 15) | ${refused.toFixed(1)} s | ≤ 60 s ${verdict(refused <= 60)} |
| the whole command (checks included) | ${seconds(wholeMs)} | |
${copies.map((c) => `| ${c.host}: rsync from the primary | ${c.sentMb.toFixed(1)} MB sent: ${c.percent.toFixed(1)}% of the data (rsync saw ${c.totalMb.toFixed(0)} MB in both directories), ${seconds(c.ms)} | ≤ 5% of the data ${verdict(c.percent <= 5)} |`).join("\n")}
| u3 copied again instead (pg_basebackup of the new primary by hand, until it streams) | ${seconds(recloneMs)} | |
| u3: pgrep's rsync × copying it again | ${copy ? (copy.ms / recloneMs).toFixed(2) : "?"} | |

The rows of pgbench_accounts hashed in key order on u3 after the upgrade equal the primary's before it.
Standbys copied again is what Patroni, CloudNativePG and Crunchy PGO do after \`pg_upgrade\`; on one shared
disk and an unlimited bridge the copy is as cheap as it will ever be, and over a real link it grows with
the data while the rsync of hard links does not.
`;
  writeFileSync(new URL("../docs/benchmarks-upgrade.md", import.meta.url), md);
  console.log(md);
});
