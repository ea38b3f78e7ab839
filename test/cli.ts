import { execa } from "execa";
import { fileURLToPath } from "node:url";
import { inject } from "vitest";

// Runs the CLI as a user would: the package as `npm pack` ships it, installed by test/global-setup.ts,
// through the bin its package.json names; a child process, its exit code, stdout and stderr.
export const CLI = inject("installedCli");
/** The same code one file per module, as tsc emits it: for a test that swaps a module (the recorder). */
export const CLI_MODULES = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  all: string;
  ms: number;
  /** Killed after opts.timeoutMs (it hung). */
  timedOut: boolean;
}

/** `colours`: the environment says nothing about colours (no NO_COLOR), as a user's usually does. */
export async function pgrep(args: string[], env: Record<string, string> = {}, opts: { timeoutMs?: number; colours?: boolean } = {}): Promise<CliResult> {
  const started = Date.now();
  const { NO_COLOR: _inherited, ...base } = process.env;
  const r = await execa("node", [CLI, ...args], {
    reject: false,
    extendEnv: false,
    env: { ...base, ...(opts.colours ? {} : { NO_COLOR: "1" }), ...env },
    stdin: "ignore",
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), all: `${r.stdout}\n${r.stderr}`, ms: Date.now() - started, timedOut: !!r.timedOut };
}

/** The CLI started in the background: wait on what it has printed so far, then on its end. */
export function pgrepStarted(args: string[]): { waitForOutput(re: RegExp, timeoutMs?: number): Promise<void>; done: Promise<CliResult> } {
  const started = Date.now();
  const child = execa("node", [CLI, ...args], { reject: false, env: { NO_COLOR: "1" }, stdin: "ignore" });
  let seen = "";
  child.stdout?.on("data", (d: Buffer) => (seen += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (seen += d.toString()));
  const done = child.then((r) => ({ exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), all: `${r.stdout}\n${r.stderr}`, ms: Date.now() - started, timedOut: !!r.timedOut }));
  return {
    waitForOutput: async (re, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(seen)) {
        if (Date.now() > deadline) throw new Error(`pgrep ${args.join(" ")} did not print ${re} within ${timeoutMs} ms:\n${seen}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    done,
  };
}
