import type { RunResult } from "../errors.js";

export interface RunOptions {
  /** Run as this OS user (via runuser when connected as root, sudo -n otherwise). */
  user?: string;
  /** Fed to the command's standard input; the way secrets travel. */
  stdin?: string | Buffer;
  /** Extra environment; never put secrets here (they would be visible in /proc). */
  env?: Record<string, string>;
  /** Return the result instead of throwing when the exit code is not 0. */
  allowFailure?: boolean;
  timeoutMs?: number;
  /** Receives stdout/stderr chunks as they arrive (progress). */
  onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
  /** Names the command in error messages. */
  what?: string;
  /** Called once the command runs on the host (its wrapper has said so), with its input already sent. */
  onStarted?: () => void;
}

export interface WriteOptions {
  owner?: string; // "user" or "user:group"
  mode: number; // e.g. 0o600
}

/** A command that keeps running while pgrep talks to it on stdin (e.g. a database session held open). */
export interface Spawned {
  write(text: string): void;
  end(): void;
  kill(): void;
  /** Settles when the command exits; never rejects (inspect exitCode). */
  readonly done: Promise<RunResult>;
}

/** How pgrep reaches one host. Every process run, local or remote, goes through this. */
export interface Transport {
  readonly host: string;
  /** Who commands run as by default ("root" or the SSH/local user). */
  readonly loginUser: string;
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  spawn(argv: readonly string[], opts?: Pick<RunOptions, "user" | "onOutput" | "onStarted">): Spawned;
  close(): Promise<void>;
}

export type { RunResult };
