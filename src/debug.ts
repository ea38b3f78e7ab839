// --debug: stack traces for errors, and a trace of what pgrep does that the step log does not show
// (each SSH dial and how it ended, the cluster lock), with every line stamped with the time since start.
// Read from argv: it is a global option, needed before commander has parsed anything.

export const debugOn = process.argv.includes("--debug");
const started = Date.now();

/** "+1.234s " when --debug is on, so that a run's log shows where its time went. */
export function stamp(): string {
  return debugOn ? `+${((Date.now() - started) / 1000).toFixed(3)}s ` : "";
}

export function debug(text: string): void {
  if (debugOn) process.stderr.write(`debug: ${stamp()}${text}\n`);
}
