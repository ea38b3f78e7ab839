// Every failure pgrep reports is one of these classes; src/cli.ts is the one place that turns them
// into a message and an exit code.

export const EXIT = {
  ok: 0,
  failed: 1, // a step failed while changing a host
  usage: 2, // bad inventory or arguments; nothing was contacted
  unreachable: 3, // a host could not be reached or authenticated
  refused: 4, // pgrep refused to act to protect data (e.g. a running primary in a standby's place)
  degraded: 5, // the cluster is not in the wanted state (status), or a role change happened but not everything is in line
  busy: 6, // another pgrep command holds the cluster's lock
  differs: 7, // setup --dry-run has changes to make, or status/dry run found settings that differ from the inventory
  splitBrain: 8, // status: a host the inventory calls a standby accepts writes
  internal: 70,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class PgrepError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  constructor(message: string, opts: { exitCode?: ExitCode; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.exitCode = opts.exitCode ?? EXIT.failed;
    this.hint = opts.hint;
  }
}

/** Bad inventory or command-line input. */
export class InputError extends PgrepError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: EXIT.usage, ...(hint ? { hint } : {}) });
  }
}

/** A host could not be reached, or its identity could not be verified. */
export class UnreachableError extends PgrepError {
  readonly host: string;
  /**
   * The host looks down (no answer, refused, no such name), as opposed to answering wrongly (an unknown
   * or changed host key, a failed login): only a host that is down may be left out while the others go on.
   */
  readonly down: boolean;
  constructor(host: string, message: string, hint?: string, cause?: unknown, down = true) {
    super(`${host}: ${message}`, { exitCode: EXIT.unreachable, hint, cause });
    this.host = host;
    this.down = down;
  }
}

/** pgrep refused to act because acting could lose data. */
export class RefusedError extends PgrepError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: EXIT.refused, ...(hint ? { hint } : {}) });
  }
}

export interface RunResult {
  host: string;
  command: string; // shell-quoted, already free of secrets (secrets travel on stdin or in files)
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** A command on a host exited non-zero or was killed. */
export class CommandError extends PgrepError {
  readonly result: RunResult;
  constructor(result: RunResult, what?: string) {
    const why = result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`;
    const detail = lastLines(result.stderr || result.stdout, 3);
    super(`${result.host}: ${what ?? firstWord(result.command)} failed (${why})${detail ? `: ${detail}` : ""}`);
    this.result = result;
  }
}

function firstWord(command: string): string {
  return command.split(" ").find((w) => !w.startsWith("-") && !["sudo", "runuser", "--", "-u", "-n"].includes(w)) ?? command;
}

export function lastLines(text: string, n: number): string {
  return text.trim().split("\n").filter(Boolean).slice(-n).join(" | ");
}
