import type { HostSpec } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { PgrepError } from "../errors.js";
import { runSql, sqlLiteral } from "../postgres/sql.js";
import { segmentPieces, type SegmentPiece } from "../postgres/wal.js";
import { sqlTarget } from "./context.js";
import { control } from "./host-ops.js";

// WAL that a stopped old primary wrote and no standby received, copied from its pg_wal into the chosen
// standby's before the promotion: the standby replays it, and commits acknowledged to clients survive
// asynchronous replication. Every byte put there is the old primary's WAL on the standby's timeline,
// checked to agree with what the standby already had: a copy that fails leaves nothing it cannot use.

export interface SalvageWork {
  target: { h: HostSpec; s: ReachableHost };
  source: { h: HostSpec; s: ReachableHost };
  timeline: number;
  /** What the target has (its received position) and where the source's WAL ends. */
  from: string;
  end: string;
  segmentSize: number;
  timeoutMs: number;
}

const TEMP = ".pgrep-salvage.";

// sha256 of a file's first $2 bytes ("absent" when there is no such file).
const PREFIX_SHA = 'f=$1; n=$2; [ -e "$f" ] || { echo absent; exit 0; }; head -c "$n" "$f" | sha256sum | { read -r s _; echo "$s"; }';
// The sha256 of the first $2 bytes, then those bytes in base64 (they cross pgrep's machine as text).
const READ_PIECE = 'f=$1; n=$2; head -c "$n" "$f" | sha256sum | { read -r s _; echo "$s"; }; head -c "$n" "$f" | base64 -w0';
// Written to a temporary name (PostgreSQL ignores it), extended with zeros to a whole segment, checked.
const WRITE_PIECE = 'umask 077; t=$1; size=$2; n=$3; base64 -d > "$t" && truncate -s "$size" "$t" && head -c "$n" "$t" | sha256sum | { read -r s _; echo "$s"; }';
const INSTALL = 'd=$1; shift; for n; do mv -f "$d/' + TEMP + '$n" "$d/$n" || exit 1; done';
const DISCARD = `rm -f -- "$1"/${TEMP}*`;

/** Copies, verifies and installs the pieces, restarts the target on them, and waits until it has replayed them. */
export async function salvageWal(w: SalvageWork, log: (text: string) => void): Promise<void> {
  const { target, source } = w;
  const walDir = (s: ReachableHost) => `${s.layout.dataDir}/pg_wal`;
  const asSource = { user: source.h.pg.osUser };
  const asTarget = { user: target.h.pg.osUser };
  const pieces = segmentPieces(w.timeline, w.from, w.end, w.segmentSize);
  if (!pieces.length) return;
  await checkSameStart(w, pieces[0]!);
  let stopped = false;
  try {
    for (const p of pieces) {
      const r = await source.s.transport.run(["sh", "-c", READ_PIECE, "sh", `${walDir(source.s)}/${p.name}`, String(p.bytes)], { ...asSource, what: `reading ${p.name}` });
      const nl = r.stdout.indexOf("\n");
      const sha = r.stdout.slice(0, nl).trim();
      const wrote = await target.s.transport.run(["sh", "-c", WRITE_PIECE, "sh", `${walDir(target.s)}/${TEMP}${p.name}`, String(w.segmentSize), String(p.bytes)], { ...asTarget, stdin: r.stdout.slice(nl + 1), what: `writing ${p.name}` });
      if (wrote.stdout.trim() !== sha) throw new PgrepError(`${p.name} did not arrive intact on ${target.h.name} (sha256 ${wrote.stdout.trim()} ≠ ${sha})`);
    }
    // The server must not read a segment while it is replaced: stopped, the files go in, started again.
    stopped = true;
    await control(target.h, target.s, "stop");
    await target.s.transport.run(["sh", "-c", INSTALL, "sh", walDir(target.s), ...pieces.map((p) => p.name)], { ...asTarget, what: "installing the salvaged WAL" });
    await control(target.h, target.s, "start");
    stopped = false;
    await waitReplayed(target, w.end, w.timeoutMs);
  } catch (e) {
    await target.s.transport.run(["sh", "-c", DISCARD, "sh", walDir(target.s)], { ...asTarget, allowFailure: true });
    if (stopped) {
      log(`starting it again as a standby, without the salvaged WAL that was not installed`);
      await control(target.h, target.s, "start");
    }
    throw e;
  }
}

/** The target's copy of the first segment agrees with the source's up to where the target's WAL ends. */
async function checkSameStart(w: SalvageWork, first: SegmentPiece): Promise<void> {
  if (!first.alreadyThere) return;
  const [mine, theirs] = await Promise.all(
    [w.target, w.source].map(async ({ h, s }) => (await s.transport.run(["sh", "-c", PREFIX_SHA, "sh", `${s.layout.dataDir}/pg_wal/${first.name}`, String(first.alreadyThere)], { user: h.pg.osUser, what: "comparing WAL" })).stdout.trim()),
  );
  if (mine === "absent") throw new PgrepError(`${w.target.h.name} has no ${first.name} to add to`);
  if (mine !== theirs) throw new PgrepError(`${first.name} differs between ${w.target.h.name} and ${w.source.h.name} before ${w.from}: they are not the same WAL`);
}

async function waitReplayed(target: { h: HostSpec; s: ReachableHost }, end: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = (await runSql(sqlTarget(target.h, target.s), `SELECT pg_last_wal_replay_lsn() >= ${sqlLiteral(end)}::pg_lsn`).catch(() => "")).trim();
    if (r === "t") return;
    if (Date.now() > deadline) throw new PgrepError(`${target.h.name} did not replay the salvaged WAL up to ${end} within ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
