import type { Transport } from "../transport/types.js";

// global/pg_control read directly: the fields pgrep needs sit at the same offsets in 10-18
// (system_identifier @0 u64, state @16 i32, checkPoint @32 u64), and no binary of the right major is needed.

export const DB_STATE = { shutDown: 1, shutDownInRecovery: 2, inArchiveRecovery: 5 } as const;

export interface ControlData {
  sysid: string;
  state: number;
  checkpointLsn: string;
}

export function formatLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** "16/B374D848" → a number that orders like the LSN. */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split("/");
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

export async function readControl(t: Transport, dataDir: string, asUser: string): Promise<ControlData | undefined> {
  const r = await t.run(
    ["sh", "-c", 'f="$1/global/pg_control"; [ -r "$f" ] || exit 3; od -An -t u8 -N8 "$f"; od -An -t d4 -j16 -N4 "$f"; od -An -t u8 -j32 -N8 "$f"', "sh", dataDir],
    { user: asUser, allowFailure: true },
  );
  if (r.exitCode !== 0) return undefined;
  const [sysid, state, ckpt] = r.stdout.trim().split("\n").map((l) => l.trim());
  return { sysid: sysid!, state: Number(state), checkpointLsn: formatLsn(BigInt(ckpt!)) };
}

export function cleanlyShutDown(c: ControlData): boolean {
  return c.state === DB_STATE.shutDown || c.state === DB_STATE.shutDownInRecovery;
}
