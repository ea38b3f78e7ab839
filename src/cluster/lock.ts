import { hostname, userInfo } from "node:os";
import { debug } from "../debug.js";
import { EXIT, lastLines, PgrepError } from "../errors.js";
import { draftLayout } from "../postgres/layout.js";
import type { Spawned, Transport } from "../transport/types.js";
import type { Connections } from "./connections.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";

// The cluster lock lives on the hosts, not on the operator's machine: an flock on a file named after the
// data directory, in the PostgreSQL OS user's home (~/.pgrep/locks), held by a process that pgrep keeps
// open on each host. Whoever pgrep logs in as (root, a sudo user, or that OS user itself), the lock is
// taken as that OS user on that one file, so two commands exclude each other however they logged in. The
// process reads its stdin until pgrep closes it, and runs under the tether, so the lock goes when pgrep
// ends, is killed or loses the connection: nobody ever unlocks by hand. Commands that change a cluster
// hold it; read-only ones do not.

// The holder, run as the OS user: $1 the lock file, $2 the holder's line. Append mode: opening must not
// wipe the holder's line before the lock is ours.
const HOLD = [
  'f=$1; d=${f%/*}',
  '[ -d "$d" ] || mkdir -p -m 700 "$d" || exit 1',
  'old=; [ -e "$f" ] && old=1',
  'exec 9>>"$f" || exit 1',
  'command -v flock >/dev/null || { echo "flock is not installed (util-linux)" >&2; exit 1; }',
  'if ! flock -n 9; then printf "BUSY %s\\n" "$(cat "$f")"; exit 0; fi',
  // When the lock was last let go (the time its holder emptied the file), "new", or "dirty": the last
  // holder died holding it (its line is still there), and when it stopped acting is not known.
  'if [ -s "$f" ]; then was=dirty; elif [ -n "$old" ]; then was=$(date -r "$f" +%s%N); else was=new; fi',
  'printf "%s\\n" "$2" > "$f"',
  'echo "LOCKED $was"',
  "while read -r _; do :; done",
  ': > "$f"',
].join("\n");

// $1 the OS user, $2 the holder's line, $3 the lock's name, $4 "root" when it runs as root (which becomes
// the OS user for it). Before PostgreSQL's OS user exists (nothing to lock but the host), root's own
// /run/pgrep: a file another user could plant there would be written through as root, so it must be root's.
export const LOCK_SCRIPT = [
  `hold='${HOLD.replaceAll("'", "'\\''")}'`,
  'u=$1; holder=$2; name=$3',
  'pw=$(getent passwd "$u"); home=${pw#*:*:*:*:*:}; home=${home%%:*}',
  'if [ -n "$pw" ] && [ -n "$home" ]; then',
  '  if [ "$4" = root ]; then exec runuser -u "$u" -- sh -c "$hold" sh "$home/.pgrep/locks/$name.lock" "$holder"; fi',
  '  exec sh -c "$hold" sh "$home/.pgrep/locks/$name.lock" "$holder"',
  "fi",
  '[ "$4" = root ] || { echo "the OS user $u does not exist" >&2; exit 1; }',
  'd=/run/pgrep; { [ -d "$d" ] || mkdir -p -m 700 "$d"; } && [ -O "$d" ] || { echo "$d is not root\'s own directory" >&2; exit 1; }',
  'exec sh -c "$hold" sh "$d/$name.lock" "$holder"',
].join("\n");

export interface HeldLock<T = undefined> {
  /** Hosts whose lock is held (an unreachable host is left out: a failover must still get the lock). */
  hosts: string[];
  release(): Promise<void>;
  /** What `meanwhile` returned, from the attempt that took every host's lock. */
  early: T | undefined;
}

export interface LockOptions {
  /** Wait this long for another command's lock (0: fail at once). */
  waitSeconds: number;
  onWait?: (holder: string) => void;
}

/** The lock's file name: the data directory's path, one per cluster on the host. */
export function lockName(dataDir: string): string {
  return dataDir.replace(/[^A-Za-z0-9._-]/g, "_");
}

function holderLine(): string {
  const argv = process.argv.slice(2).join(" ").replace(/[\r\n]+/g, " ").slice(0, 200);
  return `pgrep ${argv} (pid ${process.pid}, user ${userInfo().username} on ${hostname()}, since ${new Date().toISOString().replace(/\.\d+Z$/, "Z")})`;
}

interface Held {
  host: string;
  p: Spawned;
  /** When the lock was last let go, before this command took it: ns by the host's clock, "new" or "dirty". */
  was: string;
}

/**
 * Takes every reachable host's lock, or none. The first attempt asks every host at once; a later one (two
 * commands each held a part) takes the first host by name alone before the others, so that one of them
 * wins. `meanwhile` (a read: observe) runs beside the locking from the start, and what it read of a host
 * counts only when nobody let that host's lock go after the read began there (`readTimes`, by the host's
 * clock): no command acts without every lock, so nothing changed under the read. Otherwise it is read
 * again, under the lock. An attempt that fails drops what it read.
 */
export async function acquireClusterLock<T = undefined>(
  spec: ClusterSpec,
  conns: Connections,
  opts: LockOptions,
  meanwhile?: () => Promise<T>,
  readTimes?: (value: T) => ReadonlyMap<string, string | undefined>,
): Promise<HeldLock<T>> {
  // By code point, not localeCompare: its first call loads ICU's collator (~9 ms before any lock is asked).
  const hosts = [...spec.hosts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const holder = holderLine();
  const deadline = Date.now() + opts.waitSeconds * 1000;
  let told = false;
  for (let attempt = 0; ; attempt++) {
    const held: Held[] = [];
    let busy: string | undefined;
    let failure: unknown;
    const take = async (h: HostSpec): Promise<void> => {
      let t: Transport;
      try {
        t = await conns.get(h);
      } catch {
        return; // unreachable: observe reports it; the hosts that answer are locked
      }
      const L = draftLayout(h, t.loginUser);
      try {
        const r = await lockOne(t, h.pg.osUser, lockName(L.dataDir), L.admin, holder);
        if (r.held) held.push({ host: h.name, p: r.held, was: r.was! });
        else busy ??= `${r.busy} (on ${h.name})`;
      } catch (e) {
        failure ??= e;
      }
    };
    const read = meanwhile ? settled(meanwhile()) : undefined;
    let i = 0;
    if (attempt > 0) while (i < hosts.length && !held.length && !busy && !failure) await take(hosts[i++]!);
    if (!busy && !failure) await Promise.all(hosts.slice(i).map(take));
    if (!busy && !failure) {
      debug(`cluster lock held on ${held.map((x) => x.host).join(", ") || "no host"}${attempt ? ` (attempt ${attempt + 1})` : ""}`);
      const lock = { hosts: held.map((x) => x.host), release: () => releaseAll(held) };
      let r = await read;
      const stale = r && "value" in r && readTimes ? staleReads(held, readTimes(r.value)) : [];
      if (stale.length) {
        debug(`read again under the lock: ${stale.join(", ")} let go of it by another command while being read`);
        r = await settled(meanwhile!());
      }
      if (r && "error" in r) {
        await lock.release();
        throw r.error;
      }
      return { ...lock, early: r?.value };
    }
    await read;
    await releaseAll(held);
    if (failure) throw failure;
    // Two commands that asked every host at once may each hold a part: both go again at once, in order.
    if (attempt === 0 && held.length) continue;
    const by = busy ?? "another command";
    if (Date.now() >= deadline) {
      throw new PgrepError(`cluster ${spec.name} is locked by another command: ${by}`, {
        exitCode: EXIT.busy,
        hint: opts.waitSeconds ? `it did not finish within --wait-lock ${opts.waitSeconds}` : "wait for it to finish, or pass --wait-lock SECONDS",
      });
    }
    if (!told) opts.onWait?.(by);
    told = true;
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 400));
  }
}

/** Hosts read before their lock was ours whose lock another command let go after the read began (or died holding). */
export function staleReads(held: readonly { host: string; was: string }[], readAt: ReadonlyMap<string, string | undefined>): string[] {
  return held
    .filter((x) => {
      if (!readAt.has(x.host) || x.was === "new") return false;
      const at = readAt.get(x.host);
      return x.was === "dirty" || !/^\d+$/.test(x.was) || at === undefined || !/^\d+$/.test(at) || BigInt(x.was) >= BigInt(at);
    })
    .map((x) => x.host);
}

/** A promise that never rejects: its value or its error. */
function settled<T>(p: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

/** Starts the holding process on one host; it answers LOCKED (and holds until released) or BUSY <holder>. */
async function lockOne(t: Transport, osUser: string, name: string, user: string, holder: string): Promise<{ held?: Spawned; was?: string; busy?: string }> {
  let out = "";
  let answered: (line: string) => void = () => {};
  const answer = new Promise<string>((resolve) => (answered = resolve));
  const p = t.spawn(["sh", "-c", LOCK_SCRIPT, "sh", osUser, holder, name, user === "root" ? "root" : ""], {
    user,
    onOutput: (chunk, stream) => {
      if (stream !== "stdout") return;
      out += chunk;
      const line = /^(LOCKED.*|BUSY .*)$/m.exec(out);
      if (line && out.includes(`${line[0]}\n`)) answered(line[0]);
    },
  });
  void p.done.then((r) => answered(`FAILED ${lastLines(r.stderr, 2) || `exit ${r.exitCode ?? r.signal}`}`));
  const line = await answer;
  if (line.startsWith("LOCKED")) return { held: p, was: line.slice(6).trim() || "dirty" };
  if (line.startsWith("BUSY ")) return { busy: line.slice(5).trim() || "a command that is just starting or ending" };
  p.end();
  throw new PgrepError(`${t.host}: cannot take the cluster lock (${name}.lock in ${osUser}'s ~/.pgrep/locks): ${line.slice(7)}`);
}

async function releaseAll(held: Held[]): Promise<void> {
  await Promise.all(
    held.map(async (x) => {
      x.p.end();
      await x.p.done;
    }),
  );
}
