import { assessCluster } from "../cluster/assess.js";
import { formatStatusTable } from "../cluster/format.js";
import { EXIT, InputError, PgrepError, RefusedError, type ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { sqlTarget } from "../plan/context.js";
import { control, dropCopiedConninfo } from "../plan/host-ops.js";
import { rewind } from "../postgres/rewind.js";
import { runSql } from "../postgres/sql.js";
import { hostNamed, observeWith, reachable, recordAndConverge } from "./role-change.js";
import { healthy, openSession } from "./session.js";

export interface RejoinCommandOptions {
  inventory: string;
  host: string;
  allowReclone: boolean;
  acceptNewHostKeys: boolean;
  streamTimeoutSeconds: number;
}

/** Brings a former primary back as a standby of the current one: stop, rewind, configure, start, verify. */
export async function rejoinCommand(opts: RejoinCommandOptions, out: Output): Promise<ExitCode> {
  const session = await openSession(opts, (spec) => {
    const h = hostNamed(spec, opts.host);
    if (h.role === "primary") throw new InputError(`${h.name} is the inventory's primary; rejoin brings a former primary back as a standby`, "promote another host first");
  });
  try {
    const { spec } = session;
    const h = hostNamed(spec, opts.host);
    const log = (text: string) => out.progress(`[${h.name}] ${text}`);
    const snap = await session.observe();
    const S = reachable(snap, h.name);
    const P = reachable(snap, spec.primary.name);
    if (!P.sql || P.sql.inRecovery) throw new RefusedError(`${spec.primary.name}, the inventory's primary, is not running as a primary`, "run pgrep status");
    const now = assessCluster(spec, snap).find((r) => r.name === h.name)!;
    if (now.state === "streaming") {
      log(`already streams from ${spec.primary.name}; nothing to do`);
      return EXIT.ok;
    }
    if (S.running) {
      // It must never run as a second primary, and pg_rewind needs it stopped.
      log(S.sql && !S.sql.inRecovery ? "running as a second primary: stopping it" : "stopping it");
      await control(S, "stop");
    }
    // pg_rewind reads the new primary's timeline history from its last checkpoint: make it current.
    await runSql(sqlTarget(spec.primary, P), "CHECKPOINT");
    let force = new Set<string>();
    try {
      log(`pg_rewind against ${spec.primary.name}`);
      await rewind(spec, h, S, spec.primary);
      await dropCopiedConninfo(h, S);
      log("✓ rewound: only the blocks that diverged were copied");
    } catch (e) {
      if (!opts.allowReclone) {
        throw new PgrepError(`${(e as Error).message}`, { hint: "pass --allow-reclone to copy the whole data directory from the primary instead", cause: e });
      }
      log(`pg_rewind failed (${(e as Error).message}); re-cloning (--allow-reclone)`);
      force = new Set([h.name]);
    }
    const spec2 = await recordAndConverge(session, [], out, {
      skip: new Set(),
      force,
      ...(force.size ? {} : { markStandby: h.name }),
      streamTimeoutMs: opts.streamTimeoutSeconds * 1000,
    });
    const reports = assessCluster(spec2, await observeWith(session, spec2));
    out.result(formatStatusTable(reports));
    return healthy(reports) ? EXIT.ok : EXIT.degraded;
  } finally {
    await session.close();
  }
}
