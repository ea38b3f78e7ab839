import { execa } from "execa";
import { fileURLToPath } from "node:url";

// Runs the built CLI as a user would: a child process, its exit code, stdout and stderr.
export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  all: string;
  ms: number;
}

export async function pgrep(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const started = Date.now();
  const r = await execa("node", [CLI, ...args], { reject: false, env: { NO_COLOR: "1", ...env }, stdin: "ignore" });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), all: `${r.stdout}\n${r.stderr}`, ms: Date.now() - started };
}
