import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { userInfo } from "node:os";
import { describe, expect, it } from "vitest";
import { LOCK_SCRIPT } from "../../../src/cluster/lock.js";

// The lock holder as it runs on a host, run here by sh: as root (like pgrep's root and sudo logins),
// or as the OS user itself.
const me = userInfo();
const asRoot = me.uid === 0;
const hold = (osUser: string, name: string, root: boolean) => spawnSync("sh", ["-c", LOCK_SCRIPT, "sh", osUser, "pgrep test holder", name, root ? "root" : ""], { input: "", encoding: "utf8" });
const name = `pgrep-unit-${process.pid}`;
const file = `${me.homedir}/.pgrep/locks/${name}.lock`;

describe("the cluster lock's holder", () => {
  it("takes the lock in the OS user's ~/.pgrep/locks; it is free again once its stdin ends", () => {
    try {
      const r = hold(me.username, name, false);
      expect([r.status, r.stdout, r.stderr]).toEqual([0, "LOCKED\n", ""]);
      expect(readFileSync(file, "utf8")).toBe("");
    } finally {
      rmSync(file, { force: true });
    }
  });

  it("whoever runs it (root for the OS user, or the OS user itself), it is one file: the second is told who holds it", async () => {
    // The first holder keeps its stdin open; the second, run the other way, finds it busy.
    const first = spawn("sh", ["-c", LOCK_SCRIPT, "sh", me.username, "pgrep first holder", name, ""], { stdio: ["pipe", "pipe", "pipe"] });
    try {
      await new Promise<void>((resolve) => first.stdout.on("data", (d: Buffer) => d.toString().includes("LOCKED") && resolve()));
      const second = hold(me.username, name, asRoot);
      expect(second.stdout).toBe("BUSY pgrep first holder\n");
    } finally {
      first.stdin.end();
      await new Promise((r) => first.on("close", r));
      rmSync(file, { force: true });
    }
  });

  it.runIf(asRoot)("before the OS user exists: root's own /run/pgrep, and never a directory another user owns", () => {
    const ok = hold("no-such-user-pgrep", `${name}-a`, true);
    expect([ok.status, ok.stdout]).toEqual([0, "LOCKED\n"]);
    rmSync(`/run/pgrep/${name}-a.lock`, { force: true });
    const owner = statOwner("/run/pgrep");
    try {
      chownSync("/run/pgrep", 65534, 65534);
      const r = hold("no-such-user-pgrep", `${name}-b`, true);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe("/run/pgrep is not root's own directory\n");
    } finally {
      chownSync("/run/pgrep", owner, owner);
    }
    mkdirSync("/run/pgrep", { recursive: true });
  });
});

function statOwner(path: string): number {
  return Number(spawnSync("stat", ["-c", "%u", path], { encoding: "utf8" }).stdout.trim());
}
