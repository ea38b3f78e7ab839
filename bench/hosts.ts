import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { pgrep } from "../test/cli.js";
import type { Rig } from "../test/rig/rig.js";

// What the benchmarks do on the rig's hosts besides pgrep: inventories for a subset of the hosts, and
// the by-hand copy pgrep is compared with (PostgreSQL 15, Debian layout).

export const DATA = "/var/lib/postgresql/15/main";

/**
 * The rig's inventory for a subset of the hosts (`primary` first), sharing `shareState`'s password and
 * certificates once that file exists.
 */
export function subsetInventory(rig: Rig, opts: { primary: string; file: string; hosts: string[]; shareState?: string; upstreams?: Record<string, string>; extraTop?: string }): string {
  const path = rig.inventory({ primary: opts.primary, file: opts.file, upstreams: opts.upstreams ?? {}, ...(opts.extraTop ? { extraTop: opts.extraTop } : {}) });
  const [head, body] = readFileSync(path, "utf8").split("hosts:\n");
  const blocks = body!.split(/\n(?=  - name: )/).filter((b) => opts.hosts.some((h) => b.startsWith(`  - name: ${h}\n`)));
  writeFileSync(path, `${head}hosts:\n${blocks.join("\n").replace(/\n*$/, "\n")}`);
  if (opts.shareState && opts.shareState !== opts.file) spawnSync("cp", ["-r", join(rig.dir, opts.shareState.replace(/\.yml$/, ".state")), path.replace(/\.yml$/, ".state")]);
  return path;
}

export async function ok(args: string[]): Promise<string> {
  const r = await pgrep(args);
  expect(r.exitCode, r.all).toBe(0);
  return r.all;
}

/** The standby's cluster gone, configuration and all. */
export async function resetStandby(rig: Rig, h: string): Promise<void> {
  await rig.sh(h, `pg_dropcluster --stop 15 main >/dev/null 2>&1; rm -rf ${DATA} ${DATA}.pgrep-copy; true`);
}

/** The standby's data gone, its configuration (made by an earlier setup) kept: what the by-hand copy starts from. */
export async function emptyStandby(rig: Rig, h: string): Promise<void> {
  await rig.sh(h, `pg_ctlcluster 15 main stop >/dev/null 2>&1; rm -rf ${DATA}/*`);
}

/** pg_basebackup and start by hand, until the standby streams (its configuration already in place). */
export function byHandClone(h: string, primary: string, extra = ""): string {
  return (
    `runuser -u postgres -- pg_basebackup -D ${DATA} -X stream -c fast --no-password ${extra} -d 'host=${primary} user=replicator passfile=/var/lib/postgresql/.pgpass application_name=${h}' && ` +
    `touch ${DATA}/standby.signal && chown postgres: ${DATA}/standby.signal && pg_ctlcluster 15 main start && ` +
    `until [ "$(runuser -u postgres -- psql -XAtc "SELECT status FROM pg_stat_wal_receiver")" = streaming ]; do sleep 0.05; done`
  );
}

/** Bytes a host has received on every interface but lo. */
export async function receivedBytes(rig: Rig, h: string): Promise<number> {
  const out = await rig.sh(h, "for l in /sys/class/net/*; do [ \"${l##*/}\" = lo ] || cat \"$l/statistics/rx_bytes\"; done");
  return out.split(/\s+/).filter(Boolean).reduce((a, b) => a + Number(b), 0);
}

/** The commit measured (and whether the work tree differed from it), and the machine, for a results page. */
export function provenance(): { commit: string; dirty: boolean; machine: string } {
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout.trim();
  const commit = sh("git", ["rev-parse", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"]) !== "";
  const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; Linux ${release()}; Docker ${sh("docker", ["version", "--format", "{{.Server.Version}}"])}; Node ${process.version}`;
  return { commit, dirty, machine };
}

/**
 * CPU time (ms) used so far by a container's processes, from its cgroup (v1 cpuacct or v2 cpu.stat), or
 * undefined where neither is readable.
 */
export function containerCpuMs(id: string): number | undefined {
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };
  const v1 = read(`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`);
  if (v1 !== undefined) return Number(v1) / 1e6;
  const v2 = read(`/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`);
  const usec = v2 && /^usage_usec (\d+)$/m.exec(v2)?.[1];
  return usec ? Number(usec) / 1000 : undefined;
}

/** The machine's CPU time (ms, user + nice + system on every core) since boot. */
export function machineCpuMs(): number {
  const [, user, nice, system] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/);
  return ((Number(user) + Number(nice) + Number(system)) * 1000) / 100;
}
