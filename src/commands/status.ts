import { formatStatusTable } from "../cluster/format.js";
import { EXIT, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { assessCluster } from "../cluster/assess.js";
import { healthy, openSession } from "./session.js";

export interface StatusCommandOptions {
  inventory: string;
  json: boolean;
  acceptNewHostKeys: boolean;
}

/** Exit 0 when every host is as the inventory wants; 3 when a host cannot be reached; 5 (degraded) otherwise. */
export async function statusCommand(opts: StatusCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession({ ...opts, password: "optional" });
  try {
    const reports = assessCluster(session.spec, await session.observe());
    const { maxLagSeconds } = session.spec.apps;
    out.result(opts.json ? JSON.stringify({ cluster: session.spec.name, healthy: healthy(reports), maxLagSeconds, hosts: reports }, null, 2) : formatStatusTable(reports, maxLagSeconds));
    if (reports.some((r) => r.state === "unreachable")) return EXIT.unreachable;
    return healthy(reports) ? EXIT.ok : EXIT.degraded;
  } finally {
    await session.close();
  }
}
