import { createHash } from "node:crypto";
import { CommandError } from "../errors.js";
import type { RunResult, Transport, WriteOptions } from "./types.js";

// File operations built on Transport.run, so they behave the same locally and over SSH.
// Content always travels on stdin: it may be a .pgpass.

const WRITE_SCRIPT = [
  // Missing parent directories get the usual umask (others must traverse them); the file itself is private.
  'set -e; d=$(dirname "$1"); mkdir -p "$d"; umask 077',
  't=$(mktemp "$d/.pgrep-tmp.XXXXXX")',
  'trap \'rm -f "$t"\' EXIT',
  'cat > "$t"',
  '[ -z "$2" ] || chown "$2" "$t"',
  'chmod "$3" "$t"',
  // Only over the expected content (its sha256, or "absent"): exit 9 leaves the file as it is.
  'case "$4" in "") ;; absent) [ ! -e "$1" ] || exit 9;; *) s=$(sha256sum < "$1" 2>/dev/null) || exit 9; [ "${s%% *}" = "$4" ] || exit 9;; esac',
  'mv -f "$t" "$1"; trap - EXIT',
].join("\n");

/** Atomic write: a temp file in the same directory, owner and mode set, then renamed over the target. */
export async function writeFileAtomic(t: Transport, path: string, content: string, opts: WriteOptions & { asUser?: string }): Promise<void> {
  const r = await write(t, path, content, opts, "");
  if (r.exitCode !== 0) throw new CommandError(r, `writing ${path}`);
}

/**
 * The same write, made only if the file still holds `expected` (null: it must not exist); false, and
 * nothing written, when it does not. An edit computed from what was read earlier is then never written
 * over a change made since.
 */
export async function replaceFileIfUnchanged(t: Transport, path: string, expected: string | null, content: string, opts: WriteOptions & { asUser?: string }): Promise<boolean> {
  const r = await write(t, path, content, opts, expected === null ? "absent" : createHash("sha256").update(expected).digest("hex"));
  if (r.exitCode === 9) return false;
  if (r.exitCode !== 0) throw new CommandError(r, `writing ${path}`);
  return true;
}

function write(t: Transport, path: string, content: string, opts: WriteOptions & { asUser?: string }, expect: string): Promise<RunResult> {
  return t.run(["sh", "-c", WRITE_SCRIPT, "sh", path, opts.owner ?? "", opts.mode.toString(8), expect], {
    stdin: content,
    what: `writing ${path}`,
    allowFailure: true,
    ...(opts.asUser ? { user: opts.asUser } : {}),
  });
}

/** The file's text, or null when it does not exist. */
export async function readFileText(t: Transport, path: string, asUser?: string): Promise<string | null> {
  const r = await t.run(["sh", "-c", 'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi', "sh", path], {
    allowFailure: true,
    what: `reading ${path}`,
    ...(asUser ? { user: asUser } : {}),
  });
  if (r.exitCode === 3) return null;
  if (r.exitCode !== 0) throw new CommandError(r, `reading ${path}`);
  return r.stdout;
}
