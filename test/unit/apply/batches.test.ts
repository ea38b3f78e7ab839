import { describe, expect, it } from "vitest";
import { batches } from "../../../src/apply/execute.js";
import type { Step } from "../../../src/plan/steps.js";

const edit = (path: string): Step => ({ kind: "edit-file", host: "db1", file: { path, owner: "", mode: 0o644 }, edit: { type: "replace", content: "" }, why: "" });
const reload: Step = { kind: "control", host: "db1", action: "reload", why: "" };
const kinds = (b: Step[][]) => b.map((g) => g.map((s) => (s.kind === "edit-file" ? s.file.path : s.kind)));

describe("a lane's steps in groups", () => {
  it("writes different files together, and what follows after them", () => {
    expect(kinds(batches([edit("/a"), edit("/b"), reload, edit("/c")]))).toEqual([["/a", "/b"], ["control"], ["/c"]]);
  });

  it("keeps two edits of one file in order", () => {
    expect(kinds(batches([edit("/a"), edit("/b"), edit("/a")]))).toEqual([["/a", "/b"], ["/a"]]);
  });

  it("runs every other step alone", () => {
    const wait: Step = { kind: "wait-streaming", host: "db1", upstream: "db0", why: "" };
    expect(kinds(batches([reload, wait]))).toEqual([["control"], ["wait-streaming"]]);
  });
});
