import type { HostSpec } from "../model/cluster.js";
import type { ReachableHost } from "../cluster/state.js";
import { confValue, parseConninfo, parseSettings } from "../postgres/files.js";
import { slotName } from "../postgres/replication.js";
import type { Step } from "./steps.js";

// What postgresql.auto.conf sets over pgrep's settings (ALTER SYSTEM; `pg_basebackup -R` writes the
// connection settings of a hand-made standby there): that file is read last and wins.

/** What a standby must stream by: set anywhere but pgrep's files, the inventory's upstream is not what it follows. */
export const STANDBY_CRITICAL = ["primary_conninfo", "primary_slot_name"];

export interface AutoConf {
  /** Steps in the host's configuration, before its reload or restart. */
  now: Step[];
  /** Steps once the standby streams as the inventory says (a slot made by hand, now unused). */
  afterStreaming: Step[];
}

interface Context {
  /** Settings pgrep's own file sets, once written. */
  ours: ReadonlyMap<string, string>;
  resetAutoConf: boolean | undefined;
  /** A standby: the upstream the inventory names, the names and addresses it goes by, and what it is now. */
  standby?: { upstream: HostSpec; knownAs: readonly string[]; U: ReachableHost };
}

/**
 * Settings of postgresql.auto.conf over pgrep's. A standby's connection settings that point at the
 * upstream the inventory names (a standby made with `pg_basebackup -R`) are taken over: reset, so that
 * pgrep's apply, and a slot they named on the upstream is dropped once the standby streams through
 * pgrep's. Pointing elsewhere they are refused unless --reset-auto-conf. Other settings are named and left.
 */
export function autoConfSteps(h: HostSpec, s: ReachableHost, ctx: Context, refusals: string[], notes: string[]): AutoConf {
  const auto = parseSettings(s.files.autoConf);
  const over = [...auto.keys()].filter((n) => ctx.ours.has(n) || (ctx.standby && STANDBY_CRITICAL.includes(n)));
  const none: AutoConf = { now: [], afterStreaming: [] };
  if (!over.length) return none;
  const set = `postgresql.auto.conf sets ${over.join(", ")} over pgrep's settings`;
  const critical = ctx.standby ? over.filter((n) => STANDBY_CRITICAL.includes(n)) : [];
  const reset = (why: string): AutoConf => ({ now: [{ kind: "reset-auto-conf", host: h.name, settings: over, why }], afterStreaming: handMadeSlot(h, auto, ctx) });
  if (ctx.resetAutoConf) return reset(`${set} (--reset-auto-conf)`);
  if (critical.length && ctx.standby) {
    const { upstream } = ctx.standby;
    const target = pointsAt(confValue(auto.get("primary_conninfo")));
    const ok = target !== undefined && target.hosts.some((x) => ctx.standby!.knownAs.includes(x)) && target.port === upstream.pg.port;
    if (ok) return reset(`${set}: they point at ${upstream.name}, the upstream the inventory names (pg_basebackup -R wrote them); pgrep's take over`);
    const where = target ? `${target.hosts.join(",")} port ${target.port}` : "no host pgrep can read";
    refusals.push(`${h.name}: ${set}, pointing at ${where}, not at ${upstream.name} (${upstream.address} port ${upstream.pg.port}), its upstream in the inventory: it would not stream as the inventory says; fix the inventory, or pass --reset-auto-conf to let pgrep reset ${critical.join(", ")} (ALTER SYSTEM RESET)`);
    return none;
  }
  notes.push(`${h.name}: ${set}, which win: left as they are (ALTER SYSTEM RESET them, or run setup with --reset-auto-conf)`);
  return none;
}

/** Where a primary_conninfo connects: its hosts (host and hostaddr) and port. */
function pointsAt(conninfo: string | undefined): { hosts: string[]; port: number } | undefined {
  if (conninfo === undefined) return undefined;
  const c = parseConninfo(conninfo);
  const hosts = [...(c.get("host") ?? "").split(","), ...(c.get("hostaddr") ?? "").split(",")].map((x) => x.trim()).filter(Boolean);
  if (!hosts.length) return undefined;
  return { hosts, port: Number(c.get("port") ?? 5432) };
}

/** The slot a hand-made standby streamed through (`pg_basebackup -C -S name`): dropped, never left holding WAL. */
function handMadeSlot(h: HostSpec, auto: ReadonlyMap<string, string>, ctx: Context): Step[] {
  const slot = confValue(auto.get("primary_slot_name"));
  if (!ctx.standby || !slot || slot === slotName(h.name) || !ctx.standby.U.sql?.slots.some((x) => x.name === slot)) return [];
  const U = ctx.standby.upstream.name;
  return [{ kind: "drop-slot", host: U, slot, why: `${h.name} streamed through it before pgrep took it over; ${slotName(h.name)} keeps its WAL now` }];
}
