// npm test: the suite in two parts at once, each one file at a time — the majors rig (every PostgreSQL
// 10–18, the longest file), the major upgrade and the migration beside everything else — since on two cores a rig spends much of its time
// waiting for servers, not computing. Each line is prefixed with its part; the end is one summary of both:
// the slowest files and "tests: N passed, N failed, N skipped". With arguments (files, -t …) it is plain
// `vitest run` with them.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

const MAJORS = "test/integration/majors.test.ts";
const UPGRADE = "test/integration/upgrade.test.ts";
const MIGRATE = "test/integration/migrate.test.ts";
const vitest = (args) => spawn("npx", ["vitest", "run", ...args], { stdio: ["ignore", "pipe", "pipe"] });

if (process.argv.length > 2) {
  const child = spawn("npx", ["vitest", "run", ...process.argv.slice(2)], { stdio: "inherit" });
  child.on("exit", (code) => process.exit(code ?? 1));
} else {
  const parts = [
    { name: "majors", child: vitest([MAJORS, UPGRADE, MIGRATE]) },
    { name: "rest", child: vitest(["--exclude", MAJORS, "--exclude", UPGRADE, "--exclude", MIGRATE]) },
  ];
  const results = await Promise.all(
    parts.map(({ name, child }) => {
      const seen = { slowest: [], counts: undefined, inSlowest: false };
      for (const stream of [child.stdout, child.stderr])
        createInterface({ input: stream }).on("line", (line) => {
          process.stdout.write(`[${name}] ${line}\n`);
          // What the summary reporter prints at the end of each part.
          if (/^slowest files:$/.test(line)) seen.inSlowest = true;
          else if (seen.inSlowest && /^\s+\d+ s\s+\S/.test(line)) seen.slowest.push(line);
          else if (seen.inSlowest && line.trim() === "") seen.inSlowest = seen.slowest.length === 0;
          const m = /^tests: (\d+) passed, (\d+) failed, (\d+) skipped$/.exec(line);
          if (m) seen.counts = m.slice(1).map(Number);
        });
      return new Promise((resolve) => child.on("exit", (code) => resolve({ name, code: code ?? 1, ...seen })));
    }),
  );
  const slowest = results.flatMap((r) => r.slowest).sort((a, b) => Number(b.trim().split(" ")[0]) - Number(a.trim().split(" ")[0])).slice(0, 6);
  const counts = results.reduce((sum, r) => sum.map((n, i) => n + (r.counts?.[i] ?? 0)), [0, 0, 0]);
  const missing = results.filter((r) => !r.counts).map((r) => r.name);
  process.stdout.write(`\nslowest files (both parts ran at once):\n${slowest.join("\n")}\n`);
  process.stdout.write(`\ntests: ${counts[0]} passed, ${counts[1] + missing.length} failed, ${counts[2]} skipped${missing.length ? ` (no summary from: ${missing.join(", ")})` : ""}\n`);
  process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
}
