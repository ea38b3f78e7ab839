import type { CloneCompress, HostSpec } from "../model/cluster.js";
import type { Capabilities } from "../postgres/versions.js";

// Whether a standby's copy is compressed on its way. Compressing costs CPU on both sides and pays only when
// the network is the slower part: a link under 1 Gbit/s is slower than one core compressing zstd, and a
// faster one is (on most servers) faster. `auto` measures the link when the copy starts.

/** Links slower than this (bytes per second) are worth compressing for. */
export const COMPRESS_BELOW_BYTES_PER_SECOND = 125_000_000;

export interface CloneCompression {
  /** What the copy does: decided now, or (auto) at its start. */
  compress: CloneCompress;
  /** Why `auto` was settled already, for the plan. */
  note?: string;
  /** A setting that cannot be honoured: the plan refuses. */
  problem?: string;
}

export function planCompression(h: HostSpec, upstream: HostSpec, caps: Capabilities): CloneCompression {
  const wanted = h.clone.compress;
  if (h.clone.method === "basebackup" && !caps.serverSideCompression && wanted !== "none") {
    const why = `pg_basebackup of PostgreSQL ${caps.major} compresses only after the network`;
    if (wanted === "auto") return { compress: "none", note: `uncompressed: ${why}` };
    return { compress: wanted, problem: `clone.compress: ${wanted} needs PostgreSQL 15 or later with pg_basebackup (${why}); use clone: { method: rsync }, or compress: none` };
  }
  if (wanted === "auto" && h.connection.kind === "local" && upstream.connection.kind === "local") return { compress: "none", note: "uncompressed: both on this machine" };
  return { compress: wanted };
}

/** How the plan says it. */
export function describeCompression(method: "basebackup" | "rsync", from: string, compress: CloneCompress, note: string | undefined): string {
  if (note) return `, ${note}`;
  const how = (algo: "lz4" | "zstd" | undefined) => (method === "rsync" ? `rsync --compress${algo ? `-choice=${algo}` : ""}` : `${algo} on ${from}`);
  if (compress === "auto") return `, compressed (${how(method === "rsync" ? undefined : "zstd")}) if the link from ${from} measures under 1 Gbit/s when the copy starts (clone.compress: auto)`;
  if (compress === "none") return "";
  return `, compressed (${how(compress)})`;
}
