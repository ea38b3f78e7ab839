import { describe, expect, it } from "vitest";
import { consoleOutput } from "../../src/output.js";
import { Meter, parseBasebackup, parseRsync, withoutProgressLines } from "../../src/progress.js";

// Lines as pg_basebackup --progress and rsync --info=progress2 print them (to a pipe: \n; to a terminal: \r).
const BASEBACKUP = "waiting for checkpoint\n 10240/204800 kB (5%), 0/1 tablespace\n102400/204800 kB (50%), 0/1 tablespace (...ql/15/main/base/5/16384)\n";
const RSYNC = "\r          0   0%    0.00kB/s    0:00:00  \r 52,428,800  25%   50.00MB/s    0:00:03 (xfr#10, to-chk=90/100)";

function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 200, write: (t: string) => chunks.push(t) } };
}

describe("progress", () => {
  it("reads the last report in a chunk of pg_basebackup or rsync output", () => {
    expect(parseBasebackup(BASEBACKUP)).toEqual({ doneBytes: 102400 * 1024, totalBytes: 204800 * 1024 });
    expect(parseRsync(RSYNC)).toEqual({ doneBytes: 52428800, totalBytes: 209715200 });
    expect(parseBasebackup("pg_basebackup: error: connection failed")).toBeUndefined();
    expect(parseRsync("rsync: connection unexpectedly closed")).toBeUndefined();
  });

  it("keeps error output free of progress lines", () => {
    expect(withoutProgressLines(`${BASEBACKUP}pg_basebackup: error: could not write: No space left on device\n`).trim()).toBe(
      "waiting for checkpoint\npg_basebackup: error: could not write: No space left on device",
    );
  });

  it("turns samples into percent, rate and time left", () => {
    const m = new Meter();
    m.add({ doneBytes: 0, totalBytes: 100 * 1024 * 1024 }, 0);
    expect(m.describe()).toBe("0% of 100 MB");
    m.add({ doneBytes: 20 * 1024 * 1024, totalBytes: 100 * 1024 * 1024 }, 2000);
    expect(m.describe()).toBe("20% of 100 MB, 10 MB/s, 8 s left");
    m.add({ doneBytes: 100 * 1024 * 1024, totalBytes: 100 * 1024 * 1024 }, 10_000);
    expect(m.describe()).toBe("100% of 100 MB, 10 MB/s");
  });

  it("on a terminal: one live line redrawn in place and cleared before other output; ✓ in green", () => {
    const { chunks, stream } = fakeStream(true);
    const out = consoleOutput(false, stream, { write: () => true }, {});
    out.live("pg2", "pg_basebackup from pg1: 5% of 200 MB");
    out.live("pg3", "pg_basebackup from pg1: 7% of 200 MB");
    out.progress("[pg2] ✓ cloned");
    out.live("pg2", undefined);
    const text = chunks.join("");
    expect(text).toContain("[pg2] pg_basebackup from pg1: 5% of 200 MB  ·  [pg3] pg_basebackup from pg1: 7% of 200 MB");
    expect(text).toContain("\r\x1b[K[pg2] \x1b[32m✓\x1b[39m cloned\n");
    expect(text.endsWith("\r\x1b[K[pg3] pg_basebackup from pg1: 7% of 200 MB")).toBe(true);
  });

  it("NO_COLOR turns colours off on a terminal", () => {
    const { chunks, stream } = fakeStream(true);
    consoleOutput(false, stream, { write: () => true }, { NO_COLOR: "1" }).progress("[pg2] ✓ done");
    expect(chunks.join("")).toBe("[pg2] ✓ done\n");
  });

  it("not on a terminal: plain, final lines, at most one per host every few seconds; --quiet: none", () => {
    const { chunks, stream } = fakeStream(false);
    const out = consoleOutput(false, stream, { write: () => true }, {});
    out.live("pg2", "a");
    out.live("pg2", "b"); // too soon: held back
    out.live("pg2", "c");
    out.live("pg3", "x");
    out.live("pg2", undefined); // the end: the last state is printed
    out.live("pg3", undefined); // nothing new since its last line
    out.progress("[pg2] ✓ done");
    expect(chunks).toEqual(["[pg2] a\n", "[pg3] x\n", "[pg2] c\n", "[pg2] ✓ done\n"]);
    const quiet = fakeStream(false);
    const q = consoleOutput(true, quiet.stream, { write: () => true }, {});
    q.live("pg2", "a");
    q.progress("x");
    expect(quiet.chunks).toEqual([]);
  });
});
