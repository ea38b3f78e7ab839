import { stamp } from "./debug.js";
import type { Reporter } from "./apply/execute.js";

// Progress goes to stderr, results (tables, JSON) to stdout, so that `pgrep status --json | jq` works.
// On a terminal, copies show one live line that is redrawn in place, and ✓ is green; otherwise (a pipe,
// a log file, CI) every line is plain and final, and NO_COLOR turns colours off anywhere.

export interface Output {
  result(text: string): void;
  progress(text: string): void;
  /** How far a host's long task is; undefined when it is over. */
  live(host: string, text: string | undefined): void;
}

interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function useColour(stream: Stream, env: NodeJS.ProcessEnv = process.env): boolean {
  return !!stream.isTTY && env.NO_COLOR === undefined && env.TERM !== "dumb";
}

const PLAIN_EVERY_MS = 5_000;

export function consoleOutput(quiet: boolean, err: Stream = process.stderr, out: Stream = process.stdout, env: NodeJS.ProcessEnv = process.env): Output {
  const tty = !!err.isTTY;
  const colour = useColour(err, env);
  const lives = new Map<string, string>();
  const lastPlain = new Map<string, number>();
  const unprinted = new Map<string, string>();
  let shown = false;
  const clear = () => {
    if (shown) err.write("\r\x1b[K");
    shown = false;
  };
  const draw = () => {
    clear();
    if (!lives.size) return;
    const line = [...lives].map(([h, t]) => `[${h}] ${t}`).join("  ·  ");
    const width = (err.columns ?? 100) - 1;
    err.write(line.length > width ? `${line.slice(0, width - 1)}…` : line);
    shown = true;
  };
  const paint = (text: string) => (colour ? text.replace(/✓/g, "\x1b[32m✓\x1b[39m") : text);
  return {
    result: (text) => {
      clear();
      out.write(`${text}\n`);
      if (tty) draw();
    },
    progress: (text) => {
      if (quiet) return;
      clear();
      err.write(`${stamp()}${paint(text)}\n`);
      if (tty) draw();
    },
    live: (host, text) => {
      if (quiet) return;
      if (text === undefined) {
        // Not on a terminal, the last state is printed too: the line says how the copy ended.
        const last = unprinted.get(host);
        if (!tty && last) err.write(`[${host}] ${last}\n`);
        lives.delete(host);
        lastPlain.delete(host);
        unprinted.delete(host);
        if (tty) draw();
        return;
      }
      if (tty) {
        lives.set(host, text);
        draw();
        return;
      }
      const now = Date.now();
      if (now - (lastPlain.get(host) ?? 0) < PLAIN_EVERY_MS) return void unprinted.set(host, text);
      lastPlain.set(host, now);
      unprinted.delete(host);
      err.write(`[${host}] ${text}\n`);
    },
  };
}

export function lineReporter(out: Output): Reporter {
  return {
    step: (host, text) => out.progress(`[${host}] ${text}`),
    done: (host, text, ms) => out.progress(`[${host}] ✓ ${text} (${(ms / 1000).toFixed(1)} s)`),
    info: (text) => out.progress(text),
    live: (host, text) => out.live(host, text),
  };
}
