import type { HostSpec } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { COMPRESS_BELOW_BYTES_PER_SECOND } from "../plan/compress.js";
import { replicationConninfo } from "../postgres/replication.js";
import { bytes } from "../cluster/format.js";
import type { ExecContext } from "./context.js";

// clone.compress: auto. How fast the link from the upstream is, measured from the standby the way the
// copy will travel: the replication role reads a block of filler over an ordinary connection (its pg_hba
// line for pg_rewind), and psql times the transfer alone, without its start and log-in.

/** Copies smaller than this are not measured: uncompressed, they take seconds even on a slow link. */
const MEASURE_FROM_BYTES = 64 * 2 ** 20;
const MiB = 2 ** 20;

export interface CompressChoice {
  /** "negotiated": rsync --compress picks the best both ends have. */
  algo: "lz4" | "zstd" | "negotiated" | undefined;
  /** What was measured and chosen, for the log and the step's result. */
  said: string;
}

export async function chooseCompression(ctx: ExecContext, h: HostSpec, s: ReachableHost, uh: HostSpec, dataBytes: number): Promise<CompressChoice> {
  if (dataBytes < MEASURE_FROM_BYTES) return { algo: undefined, said: `uncompressed: ${bytes(dataBytes)} to copy, too little to be worth measuring the link` };
  // 16 MiB: fewer read a fast link low while the standby's CPU is busy (4 MiB read a 2 Gbit/s bridge as
  // 1.1–1.5 Gbit/s beside pg_createcluster's initdb); on a slow link that is under 1 s of a long copy.
  const size = Math.min(16, Math.max(1, Math.floor(dataBytes / 16 / MiB)));
  const ms = await timedRead(ctx, h, s, uh, size);
  if (ms === undefined) return { algo: undefined, said: `uncompressed: the link from ${uh.name} could not be measured` };
  return decideCompression(h.clone.method, uh.name, (size * MiB) / (ms / 1000));
}

/** What a measured link (bytes per second) asks for. */
export function decideCompression(method: "basebackup" | "rsync", from: string, rate: number): CompressChoice {
  const on = method === "rsync" ? "negotiated" : "zstd";
  const seen = `the link from ${from} measured ${bytes(rate)}/s (${Math.round((rate * 8) / 1e6)} Mbit/s)`;
  if (rate >= COMPRESS_BELOW_BYTES_PER_SECOND) return { algo: undefined, said: `uncompressed: ${seen}, faster than compressing would be` };
  return { algo: on, said: `compressed with ${on === "negotiated" ? "rsync --compress" : on}: ${seen}` };
}

async function timedRead(ctx: ExecContext, h: HostSpec, s: ReachableHost, uh: HostSpec, mib: number): Promise<number | undefined> {
  if (!s.psql) return undefined;
  const conninfo = replicationConninfo(ctx.spec, s.layout, uh, { dbname: "postgres", application_name: `pgrep_link_${h.name}` });
  // LC_ALL=C: psql's "Time:" line is translated, and its number formatted, by the locale.
  const sql = `\\timing on\nCOPY (SELECT repeat('x', ${MiB}) FROM generate_series(1, ${mib})) TO STDOUT;\n`;
  const r = await s.transport.run(["sh", "-c", 'LC_ALL=C "$1" -X -q -A -t --no-password -d "$2" | LC_ALL=C sed -n "s/^Time: \\([0-9.]*\\) ms.*/\\1/p"', "sh", s.psql, conninfo], {
    user: h.pg.osUser,
    stdin: sql,
    allowFailure: true,
    what: `measuring the link from ${uh.name}`,
  });
  const ms = Number(r.stdout.trim());
  return r.exitCode === 0 && ms > 0 ? ms : undefined;
}
