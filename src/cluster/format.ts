import type { HostReport } from "./assess.js";

// Human output. Glyphs as operators know them from repmgr: * primary, ! wrong, ? unreachable.

function glyph(r: HostReport): string {
  if (r.state === "unreachable") return "?";
  if (!r.ok) return "!";
  return r.wanted === "primary" ? "*" : " ";
}

export function bytes(n: number | null): string {
  if (n === null) return "";
  if (n < 1024) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function reads(r: HostReport): string {
  if (r.wanted !== "standby" || r.withinLagLimit === null) return "";
  const behind = r.appLagSeconds === null ? "lag unknown" : `${r.appLagSeconds.toFixed(1)} s behind`;
  return `${r.withinLagLimit ? "yes" : "no"} (${behind})`;
}

/** maxLagSeconds: applications.max_lag_seconds, the limit the READS column applies. */
export function formatStatusTable(reports: HostReport[], maxLagSeconds?: number, drift: ReadonlyMap<string, string[]> = new Map()): string {
  const rows = [
    ["", "HOST", "ROLE", "STATE", "UPSTREAM", "TL", "LSN", "LAG (PRIMARY'S VIEW)", "NOT YET REPLAYED", "SYNC", "SLOT (WAL HELD)", maxLagSeconds === undefined ? "" : `APP READS (≤ ${maxLagSeconds} s)`],
    ...reports.map((r) => [
      glyph(r),
      r.name,
      r.wanted,
      r.state,
      r.wanted === "standby" ? (r.upstream ?? "") : "-",
      r.timeline === null ? "" : String(r.timeline),
      r.lsn ?? "",
      r.wanted === "standby" && r.lagBytes !== null ? `${bytes(r.lagBytes)}, ${(r.lagSeconds ?? 0).toFixed(1)} s` : "",
      r.standbyReplayGapBytes !== null ? bytes(r.standbyReplayGapBytes) : "",
      r.syncState ?? "",
      r.slot ? `${r.slot}${r.slotRetainedBytes !== null ? ` (${bytes(r.slotRetainedBytes)})` : ""}` : "",
      maxLagSeconds === undefined ? "" : reads(r),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  const problems = reports.filter((r) => r.problem).map((r) => `  ${r.name}: ${r.problem}`);
  return [...lines, ...(problems.length ? ["", "Problems:", ...problems] : []), ...formatDrift(drift)].join("\n");
}

/** What differs from the inventory, host by host (empty when nothing does). */
export function formatDrift(drift: ReadonlyMap<string, string[]>): string[] {
  if (!drift.size) return [];
  return ["", "Differs from the inventory:", ...[...drift].flatMap(([host, what]) => what.map((w) => `  ${host}: ${w}`))];
}
