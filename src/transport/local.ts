import { userInfo } from "node:os";
import { execa } from "execa";
import { CommandError, type RunResult } from "../errors.js";
import { becomeArgv } from "./become.js";
import { shellCommand } from "./quote.js";
import type { RunOptions, Spawned, Transport } from "./types.js";

/** Runs commands on this machine with execa (no shell), with the same result shape as SSH. */
export class LocalTransport implements Transport {
  readonly loginUser = userInfo().username;
  constructor(readonly host: string) {}

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const full = becomeArgv(this.loginUser, opts.user, argv);
    const started = Date.now();
    const child = execa(full[0]!, full.slice(1), {
      reject: false,
      stripFinalNewline: false,
      ...(opts.stdin !== undefined ? { input: opts.stdin } : { stdin: "ignore" }),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
    });
    if (opts.onOutput) {
      const cb = opts.onOutput;
      child.stdout?.on("data", (d: Buffer) => cb(d.toString(), "stdout"));
      child.stderr?.on("data", (d: Buffer) => cb(d.toString(), "stderr"));
    }
    const r = await child;
    const result: RunResult = {
      host: this.host,
      command: shellCommand(full),
      exitCode: r.exitCode ?? null,
      signal: r.signal ?? null,
      stdout: String(r.stdout ?? ""),
      stderr: String(r.stderr ?? "") || (r.failed && r.exitCode === undefined ? (r.shortMessage ?? "") : ""),
      durationMs: Date.now() - started,
    };
    if (result.exitCode !== 0 && !opts.allowFailure) throw new CommandError(result, opts.what);
    return result;
  }

  spawn(argv: readonly string[], opts: Pick<RunOptions, "user" | "onOutput"> = {}): Spawned {
    const full = becomeArgv(this.loginUser, opts.user, argv);
    const started = Date.now();
    const child = execa(full[0]!, full.slice(1), { reject: false, stdin: "pipe", stripFinalNewline: false });
    child.stdout?.on("data", (d: Buffer) => opts.onOutput?.(d.toString(), "stdout"));
    child.stderr?.on("data", (d: Buffer) => opts.onOutput?.(d.toString(), "stderr"));
    child.stdin?.on("error", () => {}); // writing to a command that already exited
    const done = child.then((r) => ({
      host: this.host,
      command: shellCommand(full),
      exitCode: r.exitCode ?? null,
      signal: r.signal ?? null,
      stdout: String(r.stdout ?? ""),
      stderr: String(r.stderr ?? ""),
      durationMs: Date.now() - started,
    }));
    return {
      write: (text) => void child.stdin?.write(text),
      end: () => void child.stdin?.end(),
      kill: () => void child.kill("SIGKILL"),
      done,
    };
  }

  async close(): Promise<void> {}
}
