import { suggest } from "../inventory/suggest.js";
import { assessCluster, type HostReport } from "../cluster/assess.js";
import { EXIT, InputError, PgrepError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { openSession } from "../session/session.js";

export interface WaitCommandOptions {
  inventory: string;
  hosts: string[];
  maxLagBytes: number;
  maxLagSeconds: number;
  timeoutSeconds: number;
  acceptNewHostKeys: boolean;
}

function ready(r: HostReport, o: WaitCommandOptions): boolean {
  return r.state === "streaming" && (r.lagBytes ?? 0) <= o.maxLagBytes && (r.lagSeconds ?? 0) <= o.maxLagSeconds;
}

function describe(r: HostReport): string {
  if (r.state !== "streaming") return `${r.name} ${r.state}`;
  return `${r.name} streaming, ${r.lagBytes ?? 0} B / ${(r.lagSeconds ?? 0).toFixed(1)} s behind`;
}

/** Returns when the named standbys (default: all) stream within the limits; fails with the reason on timeout. */
export async function waitCommand(opts: WaitCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession({ ...opts, password: "optional" }, (spec) => {
    for (const name of opts.hosts) {
      const h = spec.hosts.find((x) => x.name === name);
      if (!h) throw new InputError(`no host named '${name}' in ${opts.inventory}${suggest(name, spec.standbys.map((x) => x.name))}`, `standbys: ${spec.standbys.map((x) => x.name).join(", ")}`);
      if (h.role !== "standby") throw new InputError(`${name} is the primary; wait is for standbys`);
    }
  });
  try {
    const names = opts.hosts.length ? opts.hosts : session.spec.standbys.map((h) => h.name);
    const deadline = Date.now() + opts.timeoutSeconds * 1000;
    let last = "";
    for (;;) {
      const reports = assessCluster(session.spec, await session.observe()).filter((r) => names.includes(r.name));
      const line = reports.map(describe).join("; ");
      if (line !== last) out.progress(line);
      last = line;
      const pending = reports.filter((r) => !ready(r, opts));
      if (!pending.length) {
        out.result(`ready: ${names.join(", ")} stream${names.length === 1 ? "s" : ""} within ${opts.maxLagBytes} B and ${opts.maxLagSeconds} s`);
        return EXIT.ok;
      }
      if (Date.now() > deadline) {
        const why = pending.map((r) => (r.problem ? `${r.name}: ${r.problem}` : describe(r))).join("; ");
        throw new PgrepError(`not ready after ${opts.timeoutSeconds} s: ${why}`, { exitCode: EXIT.degraded });
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  } finally {
    await session.close();
  }
}
