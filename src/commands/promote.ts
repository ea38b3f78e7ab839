import type { ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { runPromotion, type PromotionOptions } from "./promotion.js";

export interface PromoteCommandOptions extends PromotionOptions {
  target: string;
}

/**
 * Makes the named standby the primary without ever leaving two writable primaries unless told to, and
 * refuses when another standby holds WAL it lacks (that standby could not follow, and its WAL would be lost).
 */
export function promoteCommand(opts: PromoteCommandOptions, out: Output): Promise<ExitCode> {
  return runPromotion(opts, out, opts.target);
}
