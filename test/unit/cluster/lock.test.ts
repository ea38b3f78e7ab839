import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { userInfo } from "node:os";
import { describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { LOCK_SCRIPT, staleReads } from "../../../src/cluster/lock.js";

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
      expect([r.status, r.stdout, r.stderr]).toEqual([0, "LOCKED new\n", ""]);
      expect(readFileSync(file, "utf8")).toBe("");
      // The next holder is told when the last one let go, by this clock, in ns.
      const before = BigInt(Date.now()) * 1_000_000n;
      const again = hold(me.username, name, false);
      expect(again.stdout).toMatch(/^LOCKED \d{19}\n$/);
      const was = BigInt(again.stdout.trim().split(" ")[1]!);
      expect(was).toBeLessThanOrEqual(before);
      expect(was).toBeGreaterThan(before - 60_000_000_000n);
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

  it("a holder that died holding it (its line still in the file) is reported as dirty", () => {
    try {
      hold(me.username, name, false);
      writeFileSync(file, "pgrep setup (pid 1, killed)\n");
      expect(hold(me.username, name, false).stdout).toBe("LOCKED dirty\n");
    } finally {
      rmSync(file, { force: true });
    }
  });

  it.runIf(asRoot)("before the OS user exists: root's own /run/pgrep, and never a directory another user owns", () => {
    const ok = hold("no-such-user-pgrep", `${name}-a`, true);
    expect([ok.status, ok.stdout]).toEqual([0, "LOCKED new\n"]);
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

describe("a read made before the lock was held", () => {
  const read = new Map([["a", "2000"], ["b", "2000"], ["c", undefined]]);
  it("counts when the lock was let go before it began, or never held", () => {
    expect(staleReads([{ host: "a", was: "1999" }, { host: "b", was: "new" }, { host: "d", was: "5000" }], read)).toEqual([]);
  });
  it("is read again when the lock was let go after it began, its holder died holding it, or the read's time is unknown", () => {
    expect(staleReads([{ host: "a", was: "2000" }, { host: "b", was: "dirty" }, { host: "c", was: "1000" }], read)).toEqual(["a", "b", "c"]);
  });
});
