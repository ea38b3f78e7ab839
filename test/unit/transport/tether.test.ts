import { execFileSync, spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { HEARTBEAT_SCRIPT, tethered } from "../../../src/transport/tether.js";

// The wrapper every command runs in, run for real by this machine's sh.

function run(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const alive = (marker: string) => execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).split("\n").some((l) => l.includes(marker));

describe("the tether", () => {
  it("lets a command run on while the login user may not signal it for a moment (sudo runs as root at times)", async () => {
    // strace makes each process's first kill() fail with EPERM, as the login user's kill -0 does on a
    // sudo that has switched to root; the command must still run to its end.
    const r = await run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=kill", "-e", "inject=kill:error=EPERM:when=1", ...tethered("parent", ["sh", "-c", "sleep 1.5; echo done"])]);
    expect(r.stderr).not.toMatch(/Terminated/);
    expect([r.code, r.stdout]).toEqual([0, "done\n"]);
  });

  it("still ends the command once its anchor is gone", async () => {
    const marker = `sleep 41.${process.pid}`;
    // The anchor is the shell that starts the wrapper; it leaves after 0.3 s, the command would sleep on.
    const wrapper = tethered("parent", ["sh", "-c", `exec ${marker}`]).map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    await run(["sh", "-c", `${wrapper} >/dev/null 2>&1 & sleep 0.3`]);
    expect(alive(marker)).toBe(true);
    const deadline = Date.now() + 5_000;
    while (alive(marker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(alive(marker)).toBe(false);
  });

  it("ends the command when its connection's heartbeat ends, with its anchor still there", async () => {
    const file = `/tmp/.pgrep-hb-unit-${process.pid}`;
    const beat = spawn("sh", ["-c", HEARTBEAT_SCRIPT, "hb", file], { stdio: ["pipe", "ignore", "ignore"] });
    beat.stdin.write("\n");
    // The heartbeat's file is there before the command starts (as it is once a connection is up).
    const made = Date.now() + 5_000;
    while (!existsSync(file) && Date.now() < made) await new Promise((r) => setTimeout(r, 20));
    const marker = `sleep 42.${process.pid}`;
    // The anchor (this test's process) stays; only the heartbeat goes.
    const cmd = spawn(tethered("parent", ["sh", "-c", `exec ${marker}`], file)[0]!, tethered("parent", ["sh", "-c", `exec ${marker}`], file).slice(1), { stdio: "ignore" });
    try {
      const up = Date.now() + 5_000;
      while (!alive(marker) && Date.now() < up) await new Promise((r) => setTimeout(r, 50));
      expect(alive(marker)).toBe(true);
      beat.stdin.end(); // the connection closed: the file goes
      const deadline = Date.now() + 5_000;
      while (alive(marker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(file)).toBe(false);
      expect(alive(marker)).toBe(false);
    } finally {
      cmd.kill("SIGKILL");
      beat.kill();
    }
  });
});
