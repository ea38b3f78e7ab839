import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LOCK_SCRIPT } from "../../../src/cluster/lock.js";

// The lock holder as it runs on a host, run here by sh (as root, like pgrep's root logins).
const hold = (path: string, asRoot: boolean) => spawnSync("sh", ["-c", LOCK_SCRIPT, "sh", path, "pgrep test holder", asRoot ? "root" : ""], { input: "", encoding: "utf8" });

describe("the cluster lock's holder", () => {
  const dir = mkdtempSync(join(tmpdir(), "pgrep-lock-"));

  it("makes its directory and takes the lock; it is free again once its stdin ends", () => {
    const path = join(dir, "new", "x.lock");
    const r = hold(path, true);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, "LOCKED\n", ""]);
    expect(readFileSync(path, "utf8")).toBe("");
  });

  it("as root, refuses a directory that another user owns (a file planted there would be written through)", () => {
    const theirs = join(dir, "theirs");
    mkdirSync(theirs);
    chownSync(theirs, 65534, 65534);
    const r = hold(join(theirs, "x.lock"), true);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`${theirs} is not root's own directory\n`);
  });
});
