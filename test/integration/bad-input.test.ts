import { mkdtempSync, readFileSync, existsSync, cpSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { parse } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { CLI_MODULES } from "../cli.js";

// The bad-input corpus (test/fixtures/bad-input/cases.yml) through the real CLI, with every transport
// replaced by a recorder: a case passes only if nothing was contacted.

const FIXTURES = fileURLToPath(new URL("../fixtures/bad-input/", import.meta.url));
const HOOK = fileURLToPath(new URL("../recording/hook.mjs", import.meta.url));
const cases = parse(readFileSync(join(FIXTURES, "cases.yml"), "utf8")) as { inventories: Record<string, string>; arguments: { args: string[]; error: string }[] };
// A copy, so that nothing a run might write (a state directory) lands in the repository.
const dir = mkdtempSync(join(tmpdir(), "pgrep-bad-input-"));
cpSync(FIXTURES, dir, { recursive: true });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(name: string, args: string[]) {
  const record = join(dir, `${name.replace(/[^a-z0-9]+/gi, "_")}.record`);
  const r = await execa("node", ["--import", HOOK, CLI_MODULES, ...args], {
    cwd: dir,
    reject: false,
    stdin: "ignore",
    env: { NO_COLOR: "1", PGREP_RECORD: record, PGREP_TEST_PW: "not-a-real-password" },
  });
  return { exitCode: r.exitCode, stderr: String(r.stderr), stdout: String(r.stdout), record: existsSync(record) ? readFileSync(record, "utf8") : "" };
}

function expectOneLine(r: Awaited<ReturnType<typeof run>>, error: string) {
  const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("hint: ") && !l.startsWith("("));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(error));
  expect(r.stderr).not.toMatch(/\n\s+at |internal error/);
  expect(r.record, "a host was contacted").toBe("");
}

describe("the bad-input corpus", () => {
  it("has at least 40 cases", () => {
    expect(Object.keys(cases.inventories).length + cases.arguments.length).toBeGreaterThanOrEqual(40);
  });

  it("the recorder sees a run that does contact hosts (so an empty record means something)", async () => {
    const r = await run("control", ["setup", "-i", "good.yml"]);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.record.trim().split("\n").sort()).toEqual([
      "ssh db1 deploy@10.0.0.1:22",
      "ssh db2 deploy@10.0.0.2:22",
      "ssh db3 deploy@10.0.0.3:22",
      "tcp 10.0.0.1:22",
      "tcp 10.0.0.2:22",
      "tcp 10.0.0.3:22",
    ]);
  });

  it.concurrent.each(Object.entries(cases.inventories))("%s: exit 2, one line, nothing contacted", async (file, error) => {
    const r = await run(file, ["setup", "-i", file]);
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r, error);
  });

  it.concurrent.each(cases.arguments.map((c) => [c.args.join(" "), c] as const))("pgrep %s: exit 2, one line, nothing contacted", async (_name, c) => {
    const r = await run(c.args.join(" "), c.args);
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r, c.error);
  });
});
