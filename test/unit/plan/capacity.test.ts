import { describe, expect, it } from "vitest";
import { applyEdit, planSetup } from "../../../src/plan/setup.js";
import { load } from "../inventory/inventory-text.js";
import { emptyHost, snapshot } from "./fixtures.js";

const cluster = (n: number) =>
  load(`cluster: c1
postgres: { major: 15 }
hosts:
${Array.from({ length: n }, (_, i) => `  - { name: db${i + 1}, address: 10.0.0.${i + 1}, role: ${i ? "standby" : "primary"} }`).join("\n")}
`);

function settingsOf(n: number, host: string): string {
  const spec = cluster(n);
  const plan = planSetup(spec, snapshot(15, ...spec.hosts.map((h) => emptyHost(spec, h.name))), { force: new Set() });
  const step = plan.phases.flatMap((p) => p.lanes).flatMap((l) => l.steps).find((s) => s.host === host && s.kind === "edit-file" && s.file.path.endsWith("pgrep.conf"));
  return applyEdit("", (step as Extract<typeof step, { kind: "edit-file" }>)!.edit);
}

describe("walsenders and slots for the cluster's size", () => {
  it("PostgreSQL's 10 for small clusters; room for every other host to copy at once in large ones, the same on every host", () => {
    expect(settingsOf(4, "db1")).toMatch(/^max_wal_senders = 10\nmax_replication_slots = 10$/m);
    // Nine hosts: eight copies at once hold two senders each (-X stream).
    for (const h of ["db1", "db9"]) expect(settingsOf(9, h)).toMatch(/^max_wal_senders = 18\nmax_replication_slots = 10$/m);
    expect(settingsOf(12, "db5")).toMatch(/^max_wal_senders = 24\nmax_replication_slots = 13$/m);
  });
});
