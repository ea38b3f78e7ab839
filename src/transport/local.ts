import { userInfo } from "node:os";
import { execa, type ResultPromise } from "execa";
import { CommandError, type RunResult } from "../errors.js";
import { becomeArgv } from "./become.js";
import { shellCommand } from "./quote.js";
import { pidStripper, tethered } from "./tether.js";
import type { RunOptions, Spawned, Transport } from "./types.js";

/** Runs commands on this machine with execa (no shell), with the same result shape as SSH. */
export class LocalTransport implements Transport {
  readonly loginUser = userInfo().username;
  constructor(readonly host: string) {}

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const p = this.start(argv, opts, opts.stdin !== undefined ? { input: opts.stdin } : { stdin: "ignore" });
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          p.kill();
        }, opts.timeoutMs)
      : undefined;
    const r = await p.done;
    if (timer) clearTimeout(timer);
    const result = timedOut ? { ...r, exitCode: null, signal: "TIMEOUT" } : r;
    if (result.exitCode !== 0 && !opts.allowFailure) throw new CommandError(result, opts.what);
    return result;
  }

  spawn(argv: readonly string[], opts: Pick<RunOptions, "user" | "onOutput" | "onStarted"> = {}): Spawned {
    return this.start(argv, opts, { stdin: "pipe" });
  }

  /** Started inside the tether (anchored to this process), so that it ends if pgrep is killed. */
  private start(argv: readonly string[], opts: Pick<RunOptions, "user" | "onOutput" | "onStarted" | "env">, input: { input: string | Buffer } | { stdin: "ignore" | "pipe" }): Spawned {
    const full = becomeArgv(this.loginUser, opts.user, argv);
    const wrapped = tethered("parent", full);
    const started = Date.now();
    let pid: number | undefined;
    let killWanted = false;
    const kill = () => {
      killWanted = true;
      if (pid !== undefined) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          /* already gone */
        }
      }
    };
    const stripPid = pidStripper((p) => {
      pid = p;
      if (killWanted) kill();
      opts.onStarted?.();
    });
    const child: ResultPromise = execa(wrapped[0]!, wrapped.slice(1), {
      reject: false,
      stripFinalNewline: false,
      buffer: false,
      ...input,
      ...(opts.env ? { env: opts.env } : {}),
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => {
      const s = d.toString();
      stdout += s;
      opts.onOutput?.(s, "stdout");
    });
    child.stderr?.on("data", (d: Buffer) => {
      const s = stripPid(d.toString());
      if (!s) return;
      stderr += s;
      opts.onOutput?.(s, "stderr");
    });
    child.stdin?.on("error", () => {}); // writing to a command that already exited
    const done = child.then((r) => ({
      host: this.host,
      command: shellCommand(full),
      exitCode: r.exitCode ?? null,
      signal: r.signal ?? null,
      stdout,
      stderr: stderr || (r.failed && r.exitCode === undefined ? (r.shortMessage ?? "") : ""),
      durationMs: Date.now() - started,
    }));
    return {
      write: (text) => void child.stdin?.write(text),
      end: () => void child.stdin?.end(),
      kill,
      done,
    };
  }

  async close(): Promise<void> {}
}
