import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fingerprint, KnownHosts, keyType } from "../../../src/transport/known-hosts.js";

function newKey(dir: string, name: string): { line: string; blob: Buffer; fp: string } {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, name)]);
  const line = readFileSync(join(dir, `${name}.pub`), "utf8").trim();
  const fp = execFileSync("ssh-keygen", ["-l", "-f", join(dir, `${name}.pub`)]).toString().split(" ")[1]!;
  return { line, blob: Buffer.from(line.split(" ")[1]!, "base64"), fp };
}

describe("KnownHosts", () => {
  const dir = mkdtempSync(join(tmpdir(), "pgrep-kh-"));
  const a = newKey(dir, "a");
  const b = newKey(dir, "b");
  const key = (k: { blob: Buffer }) => ({ type: keyType(k.blob), blob: k.blob });

  it("computes the same fingerprint as ssh-keygen", () => {
    expect(fingerprint(a.blob)).toBe(a.fp);
    expect(keyType(a.blob)).toBe("ssh-ed25519");
  });

  it("tells known, unknown, changed and revoked keys apart, with [host]:port patterns", async () => {
    const file = join(dir, "kh1");
    writeFileSync(file, `[db1.example]:2222 ${a.line}\n@revoked * ${b.line.split(" ").slice(0, 2).join(" ")}\n`);
    const kh = await KnownHosts.load(file);
    expect(kh.check("db1.example", 2222, key(a)).status).toBe("known");
    expect(kh.check("db1.example", 22, key(a)).status).toBe("unknown"); // other port, other entry
    expect(kh.check("db2.example", 2222, key(a)).status).toBe("unknown");
    expect(kh.check("db1.example", 2222, key(b)).status).toBe("revoked");
  });

  it("refuses a changed key and names the expected fingerprint", async () => {
    const file = join(dir, "kh2");
    writeFileSync(file, `db1 ${a.line}\n`);
    const c = (await KnownHosts.load(file)).check("db1", 22, key(b));
    expect(c).toEqual({ status: "changed", expected: [a.fp] });
  });

  it("matches hashed entries written by ssh-keygen -H", async () => {
    const file = join(dir, "kh3");
    writeFileSync(file, `[db9.example]:2200 ${a.line}\n`);
    execFileSync("ssh-keygen", ["-q", "-H", "-f", file]);
    expect(readFileSync(file, "utf8")).toMatch(/^\|1\|/);
    const kh = await KnownHosts.load(file);
    expect(kh.check("db9.example", 2200, key(a)).status).toBe("known");
    expect(kh.check("db9.example", 22, key(a)).status).toBe("unknown");
  });

  it("records an accepted key in the form ssh reads", async () => {
    const file = join(dir, "sub", "kh4");
    const kh = await KnownHosts.load(file);
    await kh.add("10.1.2.3", 2022, key(a));
    expect((await KnownHosts.load(file)).check("10.1.2.3", 2022, key(a)).status).toBe("known");
    // OpenSSH agrees that the line is for that host and port.
    expect(execFileSync("ssh-keygen", ["-F", "[10.1.2.3]:2022", "-f", file]).toString()).toContain(a.line.split(" ")[1]!);
  });
});
