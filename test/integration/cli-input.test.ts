import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, pgrep } from "../cli.js";

// Bad input through the real CLI: one line per problem, exit 2, no stack trace, and no host contacted —
// the inventories point at a listener on this machine that counts connections.

let server: Server;
let port = 0;
let connections = 0;
const dir = mkdtempSync(join(tmpdir(), "pgrep-input-"));

beforeAll(async () => {
  server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text.replaceAll("PORT", String(port)));
  return f;
}

const good = `cluster: c
postgres: { major: 15 }
hosts:
  - { name: a, address: 127.0.0.1, role: primary, ssh: { port: PORT } }
  - { name: b, address: 127.0.0.1, role: standby, ssh: { port: PORT }, postgres: { port: 5433 } }
`;

describe("bad input", () => {
  it.each([
    ["syntax.yml", "cluster: c\nhosts: [\n", /syntax\.yml:3:1: YAML: /],
    ["typo.yml", good.replace("major: 15", "majr: 15"), /typo\.yml:2:13: postgres\.majr: unknown key 'majr'/],
    ["major.yml", good.replace("major: 15", "major: 19"), /major\.yml:2:20: postgres\.major: PostgreSQL 19 is not supported/],
    ["two.yml", good.replace("role: standby", "role: primary"), /two\.yml:5:\d+: hosts\[1\]\.role: two primaries/],
  ])("%s: exit 2, one line with file:line:col, nothing contacted", async (name, text, expected) => {
    const r = await pgrep(["setup", "-i", write(name, text)]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(expected);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(connections).toBe(0);
  });

  it("an unknown host for --force: exit 2 before contacting anything", async () => {
    const r = await pgrep(["setup", "-i", write("good.yml", good), "--force", "zz"]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/--force: no host named 'zz'/);
    expect(connections).toBe(0);
  });

  it("a missing password variable: exit 2 with the variable's name", async () => {
    const r = await pgrep(["setup", "-i", write("env.yml", good.replace("hosts:", "replication: { password: { env: PGREP_TEST_UNSET } }\nhosts:"))]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/PGREP_TEST_UNSET is not set/);
    expect(connections).toBe(0);
  });

  it("a role change without the cluster's password (never set up from this inventory): exit 2, nothing contacted", async () => {
    const r = await pgrep(["promote", "b", "-i", write("fresh.yml", good)]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/no replication password: .*fresh\.state\/replication-password does not exist/);
    expect(r.stderr).toMatch(/hint: run pgrep setup with this inventory first/);
    expect(connections).toBe(0);
  });

  it("promote of a host the inventory does not have: exit 2", async () => {
    const r = await pgrep(["promote", "zz", "-i", write("good.yml", good)]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/no host named 'zz'/);
    expect(connections).toBe(0);
  });

  it("an unknown option: exit 2", async () => {
    const r = await pgrep(["setup", "--frobnicate"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--frobnicate'/);
  });

  it("a host that does not speak SSH: exit 3, one line naming it", async () => {
    const r = await pgrep(["setup", "-i", write("good.yml", good)]);
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(/^pgrep: a(, b)?: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const s = await pgrep(["status", "-i", write("good.yml", good)]);
    expect(s.exitCode, s.all).toBe(3);
    expect(s.stdout).toMatch(/\?\s+a\s+primary\s+unreachable/);
    expect(connections).toBeGreaterThan(0);
  });
});

describe("start-up", () => {
  // A module hook lists every module the CLI loads; --help must not pull in SSH, process or YAML code.
  const hook = `data:text/javascript,${encodeURIComponent(
    `import { register } from "node:module"; register("data:text/javascript," + encodeURIComponent("export async function resolve(s, c, n) { const r = await n(s, c); process.stderr.write('LOADED ' + r.url + '\\\\n'); return r; }"));`,
  )}`;
  const loaded = async (args: string[]) => {
    const { execa } = await import("execa");
    const r = await execa("node", ["--import", hook, CLI, ...args], { reject: false });
    return { exitCode: r.exitCode, urls: String(r.stderr).split("\n").filter((l) => l.startsWith("LOADED ")).map((l) => l.slice("LOADED ".length)) };
  };

  // The YAML library is bundled with pgrep: a chunk of the bundle that holds its code.
  const holdsYaml = (u: string) => u.startsWith("file:") && u.includes("/dist/bundle/") && readFileSync(new URL(u), "utf8").includes("YAMLParseError");

  it("pgrep --help loads neither ssh2 nor execa nor yaml; a command loads what it needs", async () => {
    const help = await loaded(["--help"]);
    expect(help.exitCode).toBe(0);
    expect(help.urls.some((u) => u.endsWith("/dist/bundle/cli.js"))).toBe(true); // the hook sees imports
    expect(help.urls.filter((u) => /\/node_modules\/(ssh2|execa)\//.test(u))).toEqual([]);
    expect(help.urls.filter(holdsYaml)).toEqual([]);
    const appConfig = await loaded(["app-config", "-i", "inventories/example.yml", "--format", "uri"]);
    expect(appConfig.exitCode).toBe(0);
    expect(appConfig.urls.some(holdsYaml)).toBe(true);
    expect(appConfig.urls.filter((u) => u.includes("/node_modules/ssh2/"))).toEqual([]);
  });
});
