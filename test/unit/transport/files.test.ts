import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { replaceFileIfUnchanged } from "../../../src/transport/files.js";
import { LocalTransport } from "../../../src/transport/local.js";

// Real files and a real shell on this machine: the write script is what runs on every host.
describe("replaceFileIfUnchanged", () => {
  const t = new LocalTransport("here");
  const dir = mkdtempSync(join(tmpdir(), "pgrep-files-"));

  it("writes over the content it was told to expect, with the mode asked", async () => {
    const f = join(dir, "hba");
    writeFileSync(f, "old\n");
    expect(await replaceFileIfUnchanged(t, f, "old\n", "new\n", { mode: 0o640 })).toBe(true);
    expect(readFileSync(f, "utf8")).toBe("new\n");
    expect(statSync(f).mode & 0o777).toBe(0o640);
  });

  it("leaves a file that changed since it was read, and says so", async () => {
    const f = join(dir, "conf");
    writeFileSync(f, "edited by hand\n");
    expect(await replaceFileIfUnchanged(t, f, "what observe saw\n", "new\n", { mode: 0o600 })).toBe(false);
    expect(readFileSync(f, "utf8")).toBe("edited by hand\n");
  });

  it("creates a file expected to be absent, and never replaces one that appeared", async () => {
    const f = join(dir, "signal");
    expect(await replaceFileIfUnchanged(t, f, null, "", { mode: 0o600 })).toBe(true);
    expect(await replaceFileIfUnchanged(t, f, null, "again", { mode: 0o600 })).toBe(false);
    expect(readFileSync(f, "utf8")).toBe("");
  });
});
