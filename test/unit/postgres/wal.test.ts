import { describe, expect, it } from "vitest";
import { parseWalEnd, recordEnd, segmentName, segmentPieces } from "../../../src/postgres/wal.js";

const SEG = 16 * 1024 * 1024;

describe("where WAL ends", () => {
  it("a record's end is its start plus its length, MAXALIGNed (as pg_current_wal_lsn reported on a real 15)", () => {
    expect(recordEnd("0/036DE5F8", 1093, SEG)).toBe("0/36DEA40");
    expect(recordEnd("0/01B356F0", 405, SEG)).toBe("0/1B35888");
  });

  it("a record that crosses pages counts their headers; a segment's first page has the long one", () => {
    // 100 bytes before the page ends, 200 after the next page's 24-byte header.
    expect(recordEnd("0/2001F9C", 300, SEG)).toBe("0/20020E0");
    // Across a segment boundary: 40-byte header.
    expect(recordEnd("0/2FFFF9C", 300, SEG)).toBe("0/30000F0");
  });

  it("a record begun and not finished after the end (torn by a crash) is not a clean end", () => {
    const torn = `tli=2\nsegsize=16777216\nlast=rmgr: Heap len (rec/tot):  59/  59, tx: 1, lsn: 0/0BFFEB24, prev 0/0\nerror=pg_waldump: error: could not find file "00000002000000000000000C": No such file or directory\n`;
    expect(parseWalEnd(torn, "0/BF00000")).toMatchObject({ end: "0/BFFEB60", clean: false });
    const zeroPage = `tli=1\nsegsize=16777216\nlast=rmgr: Heap len (rec/tot):  64/  64, tx: 1, lsn: 0/03001FC0, prev 0/0\nerror=pg_waldump: error: error in WAL record at 0/3001FC0: invalid magic number 0000 in WAL segment 000000010000000000000003, LSN 0/3002000, offset 8192\n`;
    expect(parseWalEnd(zeroPage, "0/3000000")).toMatchObject({ end: "0/3002000", clean: true });
  });

  it("parses pg_waldump's last record and its error, as the script prints them", () => {
    const out = `tli=1\nsegsize=16777216\nlast=rmgr: Transaction len (rec/tot):   1093/  1093, tx:        725, lsn: 0/036DE5F8, prev 0/036DE598, desc: COMMIT\nerror=pg_waldump: error: error in WAL record at 0/36DE5F8: invalid record length at 0/36DEA40: wanted 24, got 0\n`;
    expect(parseWalEnd(out, "0/1B35888")).toEqual({ timeline: 1, end: "0/36DEA40", segmentSize: SEG, clean: true });
    expect(parseWalEnd("tli=2\nsegsize=16777216\nerror=pg_waldump: error: could not find a valid record after 0/36DEA40\n", "0/36DEA40")).toEqual({ timeline: 2, end: "0/36DEA40", segmentSize: SEG, clean: undefined });
    expect(parseWalEnd('tli=1\nsegsize=16777216\nerror=pg_waldump: error: could not find file "000000010000000000000000": No such file or directory\n', "0/100000")).toMatchObject({ segmentMissing: true });
    expect(parseWalEnd("missing=/usr/lib/postgresql/13/bin/pg_waldump\n", "0/1")).toEqual({ unknown: "no /usr/lib/postgresql/13/bin/pg_waldump" });
    expect(parseWalEnd("tli=1\nsegsize=16777216\nlast=rmgr: Heap len (rec/tot):  59/  59, tx: 1, lsn: 0/01000000, prev 0/0\n", "0/1")).toMatchObject({ unknown: expect.stringMatching(/did not reach the end/) });
  });
});

describe("the segments that hold a range of WAL", () => {
  it("names segments as PostgreSQL does", () => {
    expect(segmentName(1, "0/36DEA40", SEG)).toBe("000000010000000000000003");
    expect(segmentName(2, "1/2000000", SEG)).toBe("000000020000000100000002");
    expect(segmentName(1, "0/3000000", 64 * 1024 * 1024)).toBe("000000010000000000000000");
  });

  it("from what the standby has to the end: whole segments between, whole pages of the last", () => {
    expect(segmentPieces(1, "0/1B35888", "0/36DEA40", SEG)).toEqual([
      { name: "000000010000000000000001", bytes: SEG, alreadyThere: 0xb35888 },
      { name: "000000010000000000000002", bytes: SEG, alreadyThere: 0 },
      { name: "000000010000000000000003", bytes: 0x6dea40, alreadyThere: 0 },
    ]);
    expect(segmentPieces(1, "0/3000010", "0/3002001", SEG)).toEqual([{ name: "000000010000000000000003", bytes: 0x2001, alreadyThere: 16 }]);
    expect(segmentPieces(1, "0/3000000", "0/3000000", SEG)).toEqual([]);
    // Ending exactly at a segment boundary: that segment is not needed.
    expect(segmentPieces(1, "0/2FFF000", "0/3000000", SEG)).toEqual([{ name: "000000010000000000000002", bytes: SEG, alreadyThere: 0xfff000 }]);
  });
});
