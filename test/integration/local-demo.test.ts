import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { waitUntil } from "../rig/wait.js";
import { pgrep } from "../cli.js";

// The shipped demo inventory, on this machine with its installed PostgreSQL; moved to other ports and a
// temporary directory so that it cannot meet a demo the developer is running.

const dir = mkdtempSync(join(tmpdir(), "pgrep-demo-"));
chmodSync(dir, 0o755); // the postgres OS user must reach the data directories
const inv = join(dir, "local.yml");
writeFileSync(
  inv,
  readFileSync("inventories/local.yml", "utf8")
    .replaceAll("../.demo/", `${dir}/`)
    .replace("port: 5433", "port: 6433")
    .replace("port: 5434", "port: 6434")
    .replace("port: 5435", "port: 6435"),
);
const asOwner = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
const psql = (port: number, sql: string) =>
  execFileSync(asOwner[0] ?? "psql", [...asOwner.slice(1), ...(asOwner.length ? ["psql"] : []), "-X", "-A", "-t", "-h", "/tmp", "-p", String(port), "-d", "postgres", "-c", sql]).toString().trim();

afterAll(async () => {
  await pgrep(["destroy", "-i", inv, "--yes"]);
  rmSync(dir, { recursive: true, force: true });
});

describe("the local demo", () => {
  it("sets up a primary and two standbys, is idempotent, and destroy asks first and removes only what it made", async () => {
    const r = await pgrep(["setup", "-i", inv]);
    console.log(`local demo setup took ${r.ms} ms`);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/pg2\s+standby\s+streaming/);
    expect(r.stdout).toMatch(/pg3\s+standby\s+streaming/);

    psql(6433, "CREATE TABLE demo AS SELECT generate_series(1, 100) AS n");
    const lsn = psql(6433, "SELECT pg_current_wal_lsn()");
    for (const port of [6434, 6435]) {
      await waitUntil(`port ${port} to replay ${lsn}`, async () => psql(port, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'`) === "t", 20_000);
      expect(psql(port, "SELECT sum(n) FROM demo")).toBe("5050");
    }

    const again = await pgrep(["setup", "-i", inv]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stderr).toMatch(/Nothing to change/);

    writeFileSync(join(dir, "keep-me"), "not pgrep's");
    // What a destroy could change: the data directories' entries and the servers (their pid files).
    const state = () => ["pg1", "pg2", "pg3"].map((h) => `${readdirSync(join(dir, h, "data")).sort().join(" ")}\n${readFileSync(join(dir, h, "data", "postmaster.pid"), "utf8")}`);
    const before = state();
    const dry = await pgrep(["destroy", "-i", inv, "--dry-run"]);
    expect(state()).toEqual(before);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toContain(`[pg2] stop PostgreSQL and delete ${join(dir, "pg2", "data")} — pgrep created it`);
    for (const h of ["pg1", "pg2", "pg3"]) expect(existsSync(join(dir, h, "data", "PG_VERSION"))).toBe(true);
    expect(psql(6435, "SELECT pg_is_in_recovery()")).toBe("t");

    // Without --yes and without a terminal to ask on, destroy refuses and removes nothing.
    const unasked = await pgrep(["destroy", "-i", inv]);
    expect(unasked.exitCode, unasked.all).toBe(2);
    expect(unasked.stderr).toMatch(/destroy needs confirmation/);
    expect(unasked.stderr).toMatch(/hint: pass --yes/);
    for (const h of ["pg1", "pg2", "pg3"]) expect(existsSync(join(dir, h, "data", "PG_VERSION"))).toBe(true);
    expect(psql(6433, "SELECT 1")).toBe("1");

    const d = await pgrep(["destroy", "-i", inv, "--yes"]);
    expect(d.exitCode, d.all).toBe(0);
    for (const h of ["pg1", "pg2", "pg3"]) expect(existsSync(join(dir, h, "data"))).toBe(false);
    expect(existsSync(join(dir, "keep-me"))).toBe(true);
    expect(() => psql(6433, "SELECT 1")).toThrow();
  });
});
