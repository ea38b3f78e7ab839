import { describe, expect, it } from "vitest";
import type { CloneCompress, CloneMethod, ClusterSpec } from "../../../src/model/cluster.js";
import { decideCompression } from "../../../src/apply/link.js";
import { describeCompression, planCompression } from "../../../src/plan/compress.js";
import { planSetup } from "../../../src/plan/setup.js";
import { capabilities } from "../../../src/postgres/versions.js";
import { emptyHost, runningHost, snapshot, spec } from "./fixtures.js";

// clone.compress: what the plan settles, what it leaves to the copy's start, and what it refuses.

function cloned(major: number, method: CloneMethod, compress: CloneCompress): ClusterSpec {
  const s = spec(major);
  const hosts = s.hosts.map((h) => ({ ...h, clone: { ...h.clone, method, compress } }));
  return { ...s, hosts, primary: hosts[0]!, standbys: hosts.slice(1) };
}

const plan = (s: ClusterSpec) => planSetup(s, snapshot(s.hosts[0]!.pg.major!, runningHost(s, "db1", "7001", false), emptyHost(s, "db2")), { force: new Set() });

describe("clone.compress", () => {
  it("auto is measured when the copy starts, from PostgreSQL 15 with pg_basebackup and on every major with rsync", () => {
    for (const [major, method] of [[15, "basebackup"], [18, "basebackup"], [10, "rsync"], [14, "rsync"]] as const) {
      const s = cloned(major, method, "auto");
      expect(planCompression(s.hosts[1]!, s.hosts[0]!, capabilities(major))).toEqual({ compress: "auto" });
    }
  });

  it("auto before 15 with pg_basebackup is settled as uncompressed, and the plan says why", () => {
    const s = cloned(14, "basebackup", "auto");
    const c = planCompression(s.hosts[1]!, s.hosts[0]!, capabilities(14));
    expect(c).toEqual({ compress: "none", note: "uncompressed: pg_basebackup of PostgreSQL 14 compresses only after the network" });
    const step = plan(s).phases.flatMap((p) => p.lanes.flatMap((l) => l.steps)).find((x) => x.kind === "clone");
    expect(step).toMatchObject({ compress: "none", compressNote: c.note });
  });

  it("a named algorithm pg_basebackup cannot use before 15 is refused, with the way out", () => {
    const s = cloned(13, "basebackup", "zstd");
    expect(() => plan(s)).toThrow(/db2: clone\.compress: zstd needs PostgreSQL 15 or later with pg_basebackup .*use clone: \{ method: rsync \}, or compress: none/);
  });

  it("the plan names what the copy will use", () => {
    expect(describeCompression("basebackup", "db1", "auto", undefined)).toBe(", compressed (zstd on db1) if the link from db1 measures under 1 Gbit/s when the copy starts (clone.compress: auto)");
    expect(describeCompression("rsync", "db1", "lz4", undefined)).toBe(", compressed (rsync --compress-choice=lz4)");
    expect(describeCompression("basebackup", "db1", "none", undefined)).toBe("");
  });
});

describe("clone.compress: auto, once the link is measured", () => {
  it("compresses under 1 Gbit/s (zstd from the server, or rsync's own), and not at or over it", () => {
    expect(decideCompression("basebackup", "db1", 23e6)).toEqual({ algo: "zstd", said: "compressed with zstd: the link from db1 measured 21.9 MB/s (184 Mbit/s)" });
    expect(decideCompression("rsync", "db1", 110e6).algo).toBe("negotiated");
    expect(decideCompression("basebackup", "db1", 125e6)).toMatchObject({ algo: undefined, said: expect.stringMatching(/^uncompressed: .*\(1000 Mbit\/s\), faster than compressing would be$/) });
  });
});
