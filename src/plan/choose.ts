import { bytes } from "../cluster/format.js";
import { lsnDiff } from "../cluster/positions.js";
import type { Position } from "../cluster/state.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";

// Which standby a failover promotes, and whether a named one would lose WAL another standby holds. Pure:
// it compares the positions observe read. The rule: the most WAL received on the newest timeline; among
// standbys that hold the same, one named in replication.synchronous, then hosts[].failover.priority
// (higher first, 0 never), then the inventory's order.

/** What observe could tell of a standby: its position, or why there is none. */
export type StandbyView = { host: HostSpec; position: Position; needsRejoin: boolean } | { host: HostSpec; position: undefined; why: string };

/** The old primary, as far as it matters here: its end of WAL when its server is stopped and its host answers. */
export interface OldPrimaryView {
  name: string;
  state: "writable" | "unreachable" | "stopped";
  /** Its end of WAL (stopped, read from its pg_wal), or why it is not known. */
  walEnd?: { timeline: number; end: string } | { unknown: string };
}

export interface CandidateRow {
  host: string;
  timeline: number | null;
  received: string | null;
  replayed: string | null;
  /** Bytes behind the standby that holds the most (0 for it and its equals); null when not comparable. */
  behindBest: number | null;
  priority: number;
  synchronous: boolean;
  /** May be promoted by a failover. */
  eligible: boolean;
  chosen: boolean;
  note: string;
}

export interface Choice {
  rows: CandidateRow[];
  chosen: string | undefined;
  /** Why nothing may be chosen (none eligible, or the best eligible would lose WAL another standby holds). */
  refusal: string | undefined;
  /** The old primary's row, when it is stopped with its host up. */
  oldPrimary: { name: string; end: string | null; beyondBest: number | null; note: string } | undefined;
}

export interface ChooseOptions {
  /** The old primary accepts writes and will be stopped cleanly first: every standby streaming from it then receives all it wrote. */
  fenced: boolean;
  /** With `fenced`: a streaming standby this close to the best counts as holding the same. */
  tieBytes: number;
}

interface Ranked {
  view: Extract<StandbyView, { position: Position }>;
  /** Effective position for the comparison. */
  timeline: number;
  received: bigint;
}

export function chooseStandby(spec: ClusterSpec, standbys: StandbyView[], old: OldPrimaryView, opts: ChooseOptions): Choice {
  const syncNames = spec.synchronous?.names ?? [];
  const order = (h: HostSpec) => spec.hosts.indexOf(h);
  const comparable: Ranked[] = [];
  const rows = new Map<string, CandidateRow>();
  for (const v of standbys) {
    const base: CandidateRow = { host: v.host.name, timeline: null, received: null, replayed: null, behindBest: null, priority: v.host.failoverPriority, synchronous: syncNames.includes(v.host.name), eligible: false, chosen: false, note: "" };
    if (!v.position) {
      rows.set(v.host.name, { ...base, note: v.why });
      continue;
    }
    const p = v.position;
    rows.set(v.host.name, { ...base, timeline: p.timeline, received: p.received, replayed: p.replayed });
    if (!p.inRecovery) rows.get(v.host.name)!.note = "accepts writes: not a standby";
    else if (v.needsRejoin) rows.get(v.host.name)!.note = `a former primary waiting for pgrep rejoin ${v.host.name}`;
    else if (p.received === null) rows.get(v.host.name)!.note = "has received no WAL";
    else comparable.push({ view: v, timeline: p.timeline, received: BigInt(lsnDiff(p.received, "0/0")) });
  }
  const newest = Math.max(0, ...comparable.map((c) => c.timeline));
  const onNewest = comparable.filter((c) => c.timeline === newest);
  for (const c of comparable) if (c.timeline < newest) rows.get(c.view.host.name)!.note = `on timeline ${c.timeline}, older than ${newest}`;
  const most = onNewest.reduce<bigint>((m, c) => (c.received > m ? c.received : m), -1n);
  // Fenced: a streaming standby gets everything up to the clean stop's last record, so it holds the same.
  const holdsAll = (c: Ranked) => c.received === most || (opts.fenced && c.view.position.streaming && most - c.received <= BigInt(opts.tieBytes));
  for (const c of onNewest) {
    const row = rows.get(c.view.host.name)!;
    row.behindBest = Number(most - c.received);
    if (!holdsAll(c)) row.note = `behind by ${bytes(row.behindBest)}`;
    else if (c.view.host.failoverPriority === 0) row.note = "priority 0: never chosen by a failover";
    else row.eligible = true;
  }
  const tied = onNewest.filter((c) => rows.get(c.view.host.name)!.eligible);
  const rank = (c: Ranked): [number, number, number] => {
    const s = syncNames.indexOf(c.view.host.name);
    return [s < 0 ? syncNames.length : s, -c.view.host.failoverPriority, order(c.view.host)];
  };
  tied.sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  const pick = tied[0];
  let refusal: string | undefined;
  if (pick) {
    const row = rows.get(pick.view.host.name)!;
    row.chosen = true;
    row.note = chosenWhy(pick, tied, syncNames, opts.fenced && pick.received !== most);
    for (const c of tied.slice(1)) rows.get(c.view.host.name)!.note = `holds as much; ${whyNot(c, pick, syncNames, order)}`;
  } else {
    const ahead = onNewest.find((c) => holdsAll(c));
    refusal = ahead
      ? `${ahead.view.host.name} holds the most WAL but has failover priority 0, and every other standby is behind it: promoting one would lose what it holds`
      : comparable.length
        ? "no standby may be chosen"
        : "no standby answers with a position to compare (every one is unreachable or stopped)";
  }
  const sorted = [...rows.values()].sort((a, b) => Number(b.chosen) - Number(a.chosen) || (a.behindBest ?? Infinity) - (b.behindBest ?? Infinity) || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  return { rows: sorted, chosen: pick?.view.host.name, refusal, oldPrimary: oldPrimaryRow(old, onNewest.length ? most : undefined, newest) };
}

function chosenWhy(pick: Ranked, tied: Ranked[], syncNames: string[], fencedTie: boolean): string {
  const base = fencedTie ? "streams from the primary, which is stopped cleanly first: it receives everything" : "received the most WAL";
  if (tied.length === 1) return `chosen: ${base}`;
  if (syncNames.includes(pick.view.host.name)) return `chosen: ${base}, and it is synchronous`;
  const others = tied.slice(1);
  if (others.every((c) => c.view.host.failoverPriority < pick.view.host.failoverPriority)) return `chosen: ${base}, and the highest priority (${pick.view.host.failoverPriority})`;
  return `chosen: ${base}, and first in the inventory among equals`;
}

function whyNot(c: Ranked, pick: Ranked, syncNames: string[], order: (h: HostSpec) => number): string {
  if (syncNames.includes(pick.view.host.name) && !syncNames.includes(c.view.host.name)) return `${pick.view.host.name} is synchronous`;
  if (c.view.host.failoverPriority < pick.view.host.failoverPriority) return `lower priority than ${pick.view.host.name}`;
  return order(c.view.host) > order(pick.view.host) ? `after ${pick.view.host.name} in the inventory` : `${pick.view.host.name} is preferred`;
}

function oldPrimaryRow(old: OldPrimaryView, most: bigint | undefined, newest: number): Choice["oldPrimary"] {
  if (old.state !== "stopped" || !old.walEnd) return undefined;
  if ("unknown" in old.walEnd) return { name: old.name, end: null, beyondBest: null, note: `stopped; its end of WAL is not known (${old.walEnd.unknown})` };
  const end = BigInt(lsnDiff(old.walEnd.end, "0/0"));
  if (most === undefined || old.walEnd.timeline !== newest) return { name: old.name, end: old.walEnd.end, beyondBest: null, note: `stopped on timeline ${old.walEnd.timeline}` };
  const beyond = end > most ? Number(end - most) : 0;
  return { name: old.name, end: old.walEnd.end, beyondBest: beyond, note: beyond ? `stopped; wrote ${bytes(beyond)} no standby received` : "stopped; every byte it wrote is on a standby" };
}

/** The standbys that hold more WAL than `target` (on its timeline or a newer one), with how much more. */
export function standbysAhead(target: Position, standbys: StandbyView[]): { host: string; bytes: number }[] {
  if (target.received === null) return [];
  const ahead: { host: string; bytes: number }[] = [];
  for (const v of standbys) {
    if (!v.position || v.host.name === target.name || !v.position.inRecovery || v.position.received === null) continue;
    const p = v.position;
    if (p.timeline < target.timeline) continue;
    const more = p.timeline > target.timeline ? null : lsnDiff(p.received!, target.received);
    if (more === null || more > 0) ahead.push({ host: v.host.name, bytes: more ?? Number.NaN });
  }
  return ahead;
}

/** The candidates as a table, as `failover` prints it before it acts. */
export function formatChoice(choice: Choice, indent = "  "): string[] {
  const head = ["HOST", "TL", "RECEIVED", "REPLAYED", "BEHIND THE BEST", "PRIORITY", ""];
  const body = choice.rows.map((r) => [
    `${r.chosen ? "→ " : "  "}${r.host}`,
    r.timeline === null ? "" : String(r.timeline),
    r.received ?? "",
    r.replayed ?? "",
    r.behindBest === null ? "" : bytes(r.behindBest),
    `${r.priority}${r.synchronous ? ", sync" : ""}`,
    r.note,
  ]);
  const o = choice.oldPrimary;
  if (o) body.push([`  ${o.name}`, "", o.end ?? "?", "", o.beyondBest === null ? "" : o.beyondBest ? `${bytes(o.beyondBest)} ahead` : "0 B", "old primary", o.note]);
  const rows = [["  " + head[0]!, ...head.slice(1)], ...body];
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => indent + r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
}
