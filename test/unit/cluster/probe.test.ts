import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseKv, PROBE_SCRIPT } from "../../../src/cluster/probe.sh.js";

// The probe as it runs on a host, run here by sh (dash on Debian), with stand-ins for the server's
// binaries: psql answers what a server's JSON can hold. A primary past its first promotion sends its
// timeline history (tabs and newlines, escaped in the JSON); the answer must arrive byte for byte.

const dir = mkdtempSync(join(tmpdir(), "pgrep-probe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const answer = {
  in_recovery: false,
  timeline: 2,
  history: "1\t0/C0000A0\tno recovery target specified\n",
  odd: "a \\c backslash, \\n not a newline, \\\\ two, \\0101 an octal escape",
};

function host(): { bin: string; data: string } {
  const bin = join(dir, "bin");
  const data = join(dir, "data");
  mkdirSync(bin, { recursive: true });
  mkdirSync(join(data, "global"), { recursive: true });
  const script = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  script("postgres", 'echo "postgres (PostgreSQL) 15.10"');
  script("pg_basebackup", 'echo "pg_basebackup (PostgreSQL) 15.10"');
  // What psql -A -t prints for a json_build_object: one line, escapes as JSON has them.
  writeFileSync(join(dir, "answer.json"), `${JSON.stringify(answer)}\n`);
  script("psql", `cat >/dev/null; cat '${join(dir, "answer.json")}'`);
  writeFileSync(join(data, "PG_VERSION"), "15\n");
  // A running server: its pid is this test's, which is alive.
  writeFileSync(join(data, "postmaster.pid"), `${process.pid}\n${data}\n1700000000\n5432\n/tmp\n`);
  return { bin, data };
}

describe("the probe", () => {
  it("passes the server's JSON answer on unchanged, escapes and all", () => {
    const h = host();
    const r = spawnSync("sh", ["-c", PROBE_SCRIPT, "sh", userInfo().username, h.bin, "15", h.data, "sql:direct"], { input: "SELECT 1", encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const kv = parseKv(r.stdout);
    expect(kv.get("running")).toBe("1");
    expect(JSON.parse(kv.get("sql_json") ?? "null")).toEqual(answer);
  });
});
