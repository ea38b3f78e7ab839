import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import { parseSettings } from "../postgres/files.js";
import { hopsFromPrimary, synchronousStandbyNames } from "../postgres/replication.js";
import { settingsTarget, type Phase, type Step } from "./steps.js";

// Restarts for settings (or on demand) take one server away at a time: readers always keep all but one
// standby, and writes pause once, for the primary's own restart or for a switchover.

export type RestartStep = Extract<Step, { kind: "restart-if-pending" } | { kind: "control" }>;

/** What happens to the primary when it needs a restart: restarted last, or a switchover to a standby. */
export type PrimaryRestart = { kind: "restart" } | { kind: "switchover"; target: string };

/**
 * Settings the primary's restart lowers that a hot standby must have at least as high: then the primary
 * restarts first, and each standby restarts only once it has replayed the primary's WAL from after that
 * restart (which carries the new values). Raised, they go to the standbys first.
 */
export function loweredMinimums(P: ReachableHost, newSettings: string | null): string[] {
  if (!P.sql) return [];
  const wanted = parseSettings(newSettings);
  return P.caps.standbyMinimums.filter((n) => {
    const v = P.sql!.standbyMinimums[n];
    if (!v) return false;
    // What the restart will apply: postgresql.auto.conf wins; then pgrep's file; then the others, the default.
    const next = v.auto ?? wanted.get(n)?.replace(/^'|'$/g, "") ?? v.others ?? v.boot;
    return Number(next) < Number(v.now);
  });
}

/**
 * The first standby of the primary that streams now: where `--restart-primary switchover` goes. A named
 * host must be such a standby too.
 */
function switchoverTarget(spec: ClusterSpec, snap: ClusterSnapshot, wanted: string): { target?: string; problem?: string } {
  const P = snap.hosts.get(spec.primary.name);
  const streams = (h: HostSpec) => !!(P?.reachable && P.sql?.replication.some((r) => r.application_name === h.name && r.state === "streaming"));
  const direct = spec.standbys.filter((h) => h.upstream === spec.primary.name);
  if (wanted !== "switchover") {
    const h = spec.hosts.find((x) => x.name === wanted);
    if (!h || !direct.includes(h)) return { problem: `--restart-primary ${wanted}: not a standby of the primary ${spec.primary.name}` };
    if (!streams(h)) return { problem: `--restart-primary ${wanted}: it does not stream from ${spec.primary.name} now` };
    return { target: h.name };
  }
  const h = direct.find(streams);
  return h ? { target: h.name } : { problem: `--restart-primary switchover: no standby streams from ${spec.primary.name} now` };
}

/**
 * How the primary takes its turn: restarted, or (`--restart-primary switchover` / a standby's name) a
 * switchover, refused when a setting goes down (the standbys could not start below the running primary).
 */
export function primaryTurn(spec: ClusterSpec, snap: ClusterSnapshot, restarts: ReadonlyMap<string, RestartStep>, lowered: string[], restartPrimary: string): { primary: PrimaryRestart; problem?: string } {
  if (restartPrimary === "restart" || !restarts.has(spec.primary.name)) return { primary: { kind: "restart" } };
  const { target, problem } = switchoverTarget(spec, snap, restartPrimary);
  if (problem) return { primary: { kind: "restart" }, problem };
  if (lowered.length)
    return { primary: { kind: "restart" }, problem: `--restart-primary ${restartPrimary}: ${lowered.join(", ")} goes down, and a standby cannot start below its primary's value; let the primary restart first (leave out --restart-primary)` };
  return { primary: { kind: "switchover", target: target! } };
}

/**
 * Phases that restart the given hosts one at a time: the standbys nearest the primary first, each seen
 * streaming again before the next; the primary last, its standbys then seen streaming again. `lowered`
 * (see loweredMinimums) puts the primary first instead.
 */
export function rollingPhases(spec: ClusterSpec, snap: ClusterSnapshot, restarts: ReadonlyMap<string, RestartStep>, lowered: string[], primary: PrimaryRestart = { kind: "restart" }): Phase[] {
  const P = spec.primary.name;
  const standbys = spec.standbys.filter((h) => restarts.has(h.name)).sort((a, b) => hopsFromPrimary(spec, a) - hopsFromPrimary(spec, b));
  const total = standbys.length + (restarts.has(P) ? 1 : 0);
  let n = 0;
  const title = (host: string, extra = "") => `restart one host at a time (${++n} of ${total}): ${host}${extra}`;
  const primaryFirst = restarts.has(P) && lowered.length > 0 && primary.kind === "restart";
  // The primary's standbys lose their connection while it restarts: each is seen streaming again.
  const followers = (): Phase[] => {
    const S = snap.hosts.get(P);
    const hosts = spec.standbys.filter((h) => h.upstream === P && S?.reachable && S.sql?.replication.some((r) => r.application_name === h.name && r.state === "streaming"));
    return hosts.length ? [{ title: "the primary's standbys stream again", lanes: hosts.map((h) => ({ host: h.name, steps: [{ kind: "wait-streaming", host: h.name, upstream: P, why: `${P} restarted` }] })) }] : [];
  };
  const phases: Phase[] = [];
  if (primaryFirst)
    phases.push({ title: title(P, `, first: it lowers ${lowered.join(", ")}, which no standby may have below its primary`), lanes: [{ host: P, steps: [restarts.get(P)!] }] }, ...followers());
  for (const h of standbys) {
    const steps: Step[] = [];
    if (primaryFirst) steps.push({ kind: "catch-up", host: h.name, primary: P, why: `restart only once it has the primary's new ${lowered.join(", ")}` });
    const window = synchronousWindow(spec, snap, h);
    steps.push(...window.before, restarts.get(h.name)!, { kind: "wait-streaming", host: h.name, upstream: h.upstream!, why: "the next host restarts only once this one streams again" }, ...window.after);
    phases.push({ title: title(h.name), lanes: [{ host: h.name, steps }] });
  }
  if (restarts.has(P) && !primaryFirst) {
    if (primary.kind === "switchover")
      phases.push({ title: title(P, `: a switchover to ${primary.target}, ${P} restarts as its standby`), lanes: [{ host: primary.target, steps: [{ kind: "switchover", host: primary.target, from: P, why: "writes pause only for the switchover" }] }] });
    else phases.push({ title: title(P, ", last"), lanes: [{ host: P, steps: [restarts.get(P)!] }] }, ...followers());
  }
  return phases;
}

/**
 * `pgrep restart`: the named hosts (default all), one at a time, in the order above. Each must run and be
 * in line now, since each is proven streaming again before the next goes.
 */
export function planRestart(spec: ClusterSpec, snap: ClusterSnapshot, names: string[], restartPrimary: string): { phases: Phase[]; problems: string[] } {
  const problems: string[] = [];
  const restarts = new Map<string, RestartStep>();
  for (const h of spec.hosts.filter((x) => !names.length || names.includes(x.name))) {
    const s = snap.hosts.get(h.name);
    if (!s?.reachable || !s.running || !s.sql) {
      problems.push(`${h.name}: PostgreSQL is not running${s && !s.reachable ? ` (${s.error.message})` : ""}; pgrep setup starts it`);
      continue;
    }
    const pending = s.sql.pendingRestart;
    restarts.set(h.name, { kind: "control", host: h.name, action: "restart", why: pending.length ? `asked for; also applies ${pending.join(", ")}` : "asked for" });
  }
  const P = snap.hosts.get(spec.primary.name);
  // The settings file on disk is what the primary's restart applies.
  const lowered = P?.reachable && restarts.has(spec.primary.name) ? loweredMinimums(P, P.files.settings) : [];
  const { primary, problem } = primaryTurn(spec, snap, restarts, lowered, restartPrimary);
  if (problem) problems.push(problem);
  return { phases: rollingPhases(spec, snap, restarts, lowered, primary), problems };
}

/**
 * Commits wait for the synchronous standbys. When restarting `h` leaves fewer of them streaming than
 * replication.synchronous asks for, every commit would stall for the restart: for that window the
 * primary's synchronous_standby_names moves to other streaming standbys (commits still wait for a
 * standby), or, with none, asks for as many as are left (none: commits wait for no standby), and is put
 * back once `h` streams again. A reload on the primary; the plan says which.
 */
export function synchronousWindow(spec: ClusterSpec, snap: ClusterSnapshot, h: HostSpec): { before: Step[]; after: Step[] } {
  const none = { before: [], after: [] };
  const wanted = synchronousStandbyNames(spec);
  const sync = spec.synchronous;
  const P = snap.hosts.get(spec.primary.name);
  if (!wanted || !sync || !P?.reachable || !P.sql || h.upstream !== spec.primary.name || !sync.names.includes(h.name)) return none;
  const streaming = (n: string) => n !== h.name && P.sql!.replication.some((r) => r.application_name === n && r.state === "streaming");
  const need = Math.min(sync.num, sync.names.filter((n) => spec.standbys.some((x) => x.name === n && x.upstream === spec.primary.name)).length);
  const named = sync.names.filter(streaming);
  if (named.length >= need) return none;
  const others = spec.standbys.filter((x) => x.upstream === spec.primary.name && !sync.names.includes(x.name) && streaming(x.name)).map((x) => x.name);
  const hosts = [...named, ...others];
  const num = Math.min(need, hosts.length);
  const value = num ? `${sync.method} ${num} (${hosts.map((n) => `"${n}"`).join(", ")})` : "";
  const target = settingsTarget(spec.primary, P);
  const say = num ? `commits wait for ${hosts.length > 1 ? `${num} of ${hosts.join(", ")}` : hosts[0]} instead` : "commits wait for no standby meanwhile";
  const set = (v: string, why: string): Step[] => [
    { kind: "edit-file", host: P.name, file: target, edit: { type: "setting", name: "synchronous_standby_names", value: v }, why },
    { kind: "control", host: P.name, action: "reload", why: "apply synchronous_standby_names" },
  ];
  return {
    before: set(value, `${h.name} is a synchronous standby and restarts: ${say}, so that no commit waits for its restart`),
    after: set(wanted, `${h.name} streams again: back to ${wanted}`),
  };
}
