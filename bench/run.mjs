#!/usr/bin/env node
// npm run bench [-- --scale N] [--runs R]: prepares the rig, then runs the benchmark under vitest.
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const scale = opt("scale", "64");
const runs = opt("runs", "3");
const command = `npm run bench -- --scale ${scale} --runs ${runs}`;
const step = (cmd, argv, env = {}) => {
  const r = spawnSync(cmd, argv, { stdio: "inherit", env: { ...process.env, ...env } });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
step("bash", ["test/rig/prepare.sh"]);
step("npx", ["vitest", "run", "--config", "bench/vitest.config.ts"], { PGREP_BENCH_SCALE: scale, PGREP_BENCH_RUNS: runs, PGREP_BENCH_COMMAND: command });
