import type { Transport } from "../transport/types.js";
import { formatLsn, lsnValue } from "./control.js";

// A stopped server's WAL, read where it lies: how far it goes (pg_waldump of the server's own major), and
// the segment files that hold a range of it. What a failover needs to salvage what a crashed primary wrote
// that no standby received.

const PAGE = 8192n;
/** Page headers (MAXALIGNed XLogPageHeaderData / XLogLongPageHeaderData): the long one opens a segment. */
const SHORT_HEADER = 24n;
const LONG_HEADER = 40n;

/**
 * Where a record ends (the next one starts there), as recovery reports it: its bytes counted from its
 * start, the page headers it crosses added, MAXALIGNed.
 */
export function recordEnd(lsn: string, totalLength: number, segmentSize: number): string {
  let pos = lsnValue(lsn);
  let left = BigInt(totalLength);
  const seg = BigInt(segmentSize);
  for (;;) {
    if (pos % PAGE === 0n) pos += pos % seg === 0n ? LONG_HEADER : SHORT_HEADER;
    const room = PAGE - (pos % PAGE);
    if (left <= room) {
      pos += left;
      break;
    }
    left -= room;
    pos += room;
  }
  return formatLsn((pos + 7n) & ~7n);
}

/** The name of the WAL segment file that holds `lsn` on `timeline`. */
export function segmentName(timeline: number, lsn: string | bigint, segmentSize: number): string {
  const seg = BigInt(segmentSize);
  const no = (typeof lsn === "string" ? lsnValue(lsn) : lsn) / seg;
  const perId = 0x100000000n / seg;
  const hex = (v: bigint) => v.toString(16).toUpperCase().padStart(8, "0");
  return `${hex(BigInt(timeline))}${hex(no / perId)}${hex(no % perId)}`;
}

export interface SegmentPiece {
  name: string;
  /**
   * Bytes of the old primary's file to copy, up to the end of its last whole record (the rest of the
   * segment stays zero: a record it had only begun to write is not copied).
   */
  bytes: number;
  /** Bytes at the front the standby has already: they must be the same on both sides. */
  alreadyThere: number;
}

/** The pieces of WAL from `from` (what the standby has) to `end` (where the old primary's WAL ends). */
export function segmentPieces(timeline: number, from: string, end: string, segmentSize: number): SegmentPiece[] {
  const seg = BigInt(segmentSize);
  const a = lsnValue(from);
  const b = lsnValue(end);
  if (b <= a) return [];
  const pieces: SegmentPiece[] = [];
  for (let no = a / seg; no <= (b - 1n) / seg; no++) {
    const start = no * seg;
    const last = (b - 1n) / seg === no;
    const bytes = last ? b - start : seg;
    pieces.push({ name: segmentName(timeline, start, segmentSize), bytes: Number(bytes), alreadyThere: no === a / seg ? Number(a - start) : 0 });
  }
  return pieces;
}

/**
 * `clean`: nothing but zeros follows the end (undefined: not known). A record begun and never finished
 * (torn by a crash) makes it false: such a server cannot simply follow a new timeline forked there.
 */
export type WalEnd = { timeline: number; end: string; segmentSize: number; clean: boolean | undefined } | { unknown: string; segmentMissing?: boolean };

// Run as the server's OS user on its host: the newest timeline in pg_wal (the one a primary writes), a
// segment's size, and the last lines pg_waldump prints from `start` on (it ends at the first record that
// is not there: the end of WAL).
export const WAL_END_SCRIPT = String.raw`d=$1; w=$2/pg_waldump; start=$3
[ -x "$w" ] || { echo "missing=$w"; exit 0; }
tli=0; seg=""
for f in "$d"/pg_wal/*; do
  n=%{f##*/}
  case "$n" in
    [0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]*) t=$((0x%{n%"%{n#????????}"})); [ "$t" -gt "$tli" ] && tli=$t
      case "$n" in *.*) ;; *) seg=$f;; esac;;
  esac
done
[ -n "$seg" ] || { echo "missing=no WAL segment in $d/pg_wal"; exit 0; }
echo "tli=$tli"
echo "segsize=$(stat -c %s "$seg")"
e=$(mktemp) || exit 1
"$w" -p "$d/pg_wal" -t "$tli" -s "$start" 2>"$e" | tail -n 1 | sed 's/^/last=/'
tail -n 1 "$e" | sed 's/^/error=/'; rm -f "$e"
`.replaceAll("%{", "${");

const RECORD = /len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*\d+, lsn: ([0-9A-F]+\/[0-9A-F]+)/;

/** Parses WAL_END_SCRIPT's output: the end of the last record pg_waldump read. */
export function parseWalEnd(out: string, start: string): WalEnd {
  const lines = out.trim().split("\n");
  const missing = lines.find((l) => l.startsWith("missing="));
  if (missing) return { unknown: `no ${missing.slice(8)}` };
  const timeline = Number(lines.find((l) => l.startsWith("tli="))?.slice(4));
  const segmentSize = Number(lines.find((l) => l.startsWith("segsize="))?.slice(8));
  const last = lines.find((l) => l.startsWith("last=") && RECORD.test(l));
  const error = lines.find((l) => l.startsWith("error="))?.slice(6);
  if (!timeline || !segmentSize) return { unknown: "pg_wal could not be read" };
  if (!error || !/pg_waldump: (error|fatal)/i.test(error)) return { unknown: `pg_waldump did not reach the end of WAL (${error ?? "it said nothing"})` };
  if (last) {
    const [, tot, lsn] = RECORD.exec(last)!;
    const end = recordEnd(lsn!, Number(tot), segmentSize);
    return { timeline, end, segmentSize, clean: endsInZeros(error, end) };
  }
  // Nothing after the start: either the start is the end, or its segment is gone.
  if (/could not (find|open) file|No such file/.test(error)) return { unknown: error.replace(/^pg_waldump: (error|fatal): /i, ""), segmentMissing: true };
  return { timeline, end: start, segmentSize, clean: undefined };
}

/** pg_waldump stopped at zeros right at the end: a record length of 0 there, or a page of zeros after it. */
function endsInZeros(error: string, end: string): boolean {
  const at = (lsn: string | undefined) => lsn !== undefined && lsnValue(lsn) === lsnValue(end);
  const length = /invalid record length at ([0-9A-F]+\/[0-9A-F]+): (?:wanted|expected at least) \d+, got 0\b/i.exec(error);
  if (length) return at(length[1]);
  return /invalid magic number 0000 /i.test(error) && lsnValue(end) % PAGE === 0n;
}

/** The end of a stopped server's WAL, read from `start` (a record boundary: a standby's replay position). */
export async function readWalEnd(t: Transport, opts: { dataDir: string; binDir: string; osUser: string }, start: string): Promise<WalEnd> {
  const r = await t.run(["sh", "-c", WAL_END_SCRIPT, "sh", opts.dataDir, opts.binDir, start], { user: opts.osUser, what: "reading the end of its WAL", allowFailure: true, timeoutMs: 120_000 });
  if (r.exitCode !== 0) return { unknown: `reading pg_wal failed: ${r.stderr.trim().split("\n").at(-1) ?? r.exitCode}` };
  return parseWalEnd(r.stdout, start);
}
