import type { Transport, WriteOptions } from "./types.js";

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
  'mv -f "$t" "$1"; trap - EXIT',
].join("\n");

/** Atomic write: a temp file in the same directory, owner and mode set, then renamed over the target. */
export async function writeFileAtomic(t: Transport, path: string, content: string, opts: WriteOptions & { asUser?: string }): Promise<void> {
  await t.run(["sh", "-c", WRITE_SCRIPT, "sh", path, opts.owner ?? "", opts.mode.toString(8)], {
    stdin: content,
    what: `writing ${path}`,
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
  if (r.exitCode !== 0) {
    const { CommandError } = await import("../errors.js");
    throw new CommandError(r, `reading ${path}`);
  }
  return r.stdout;
}
