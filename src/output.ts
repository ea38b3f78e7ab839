import type { Reporter } from "./plan/execute.js";

// Progress goes to stderr, results (tables, JSON) to stdout, so that `pgrep status --json | jq` works.

export interface Output {
  result(text: string): void;
  progress(text: string): void;
}

export function consoleOutput(quiet: boolean): Output {
  return {
    result: (text) => process.stdout.write(`${text}\n`),
    progress: (text) => {
      if (!quiet) process.stderr.write(`${text}\n`);
    },
  };
}

export function lineReporter(out: Output): Reporter {
  return {
    step: (host, text) => out.progress(`[${host}] ${text}`),
    done: (host, text, ms) => out.progress(`[${host}] ✓ ${text} (${(ms / 1000).toFixed(1)} s)`),
    info: (text) => out.progress(text),
  };
}
