import type { ExitCode } from "../errors.js";
import type { Output } from "../output.js";
import { runPromotion, type PromotionOptions } from "./promotion.js";

export type FailoverCommandOptions = Omit<PromotionOptions, "force">;

/**
 * The primary is lost (or must go): pgrep compares every standby that answers, prints the candidates, and
 * promotes the one that received the most WAL (salvaging what a crashed primary wrote that none received).
 */
export function failoverCommand(opts: FailoverCommandOptions, out: Output): Promise<ExitCode> {
  return runPromotion({ ...opts, force: false }, out, undefined);
}
