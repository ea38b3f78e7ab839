// Every process pgrep starts on a host runs under this wrapper, so that it never outlives the pgrep that
// started it. sshd does not signal a command without a terminal when the connection drops, and
// pg_basebackup ignores SIGPIPE, so a copy would otherwise go on streaming after pgrep was killed.
//
// Over SSH the command starts in / (commands take absolute paths). The wrapper prints its pid on stderr (how kill() reaches it), runs the command in its own session with
// the wrapper's stdin, and a watchdog ends the command's whole process group once the anchor is gone:
// the sshd process of the connection (over SSH), or pgrep itself (local). A TERM to the wrapper is passed
// to the group too. The exit status is the command's.

export const PID_MARK = "\x1epgrep-pid ";

// POSIX sh (dash): builtins only where it runs for every command, and `kill -SIG -PGID` (dash has no `--`).
// Whether a process is still there is asked of /proc, never of `kill -0`: a command run through sudo is
// a root process for moments of its life, and the login user's `kill -0` then fails (EPERM) although it
// runs; taken for "gone", that ended the command a moment later, when the signal got through again.
const SCRIPT = String.raw`mode=$1; shift
a=$PPID
if [ "$mode" = sshd ]; then
  # From /, not the login user's home: a command run as postgres cannot enter /root, and says so.
  cd /
  p=$PPID
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    read -r comm < /proc/$p/comm 2>/dev/null
    case "$comm" in sshd*) a=$p; break;; esac
    q=; while read -r k v; do [ "$k" = PPid: ] && q=$v && break; done < /proc/$p/status 2>/dev/null; p=$q
  done
fi
printf '\036pgrep-pid %s\n' "$$" >&2
exec 3<&0
setsid "$@" <&3 3<&- &
c=$!
exec 3<&- </dev/null
trap 'kill -TERM -$c 2>/dev/null; setsid sh -c "i=0; while [ \$i -lt 30 ] && [ -d /proc/$c ]; do sleep 0.1; i=\$((i+1)); done; kill -KILL -$c" >/dev/null 2>&1 &' TERM INT HUP
setsid sh -c 'while [ -d /proc/$1 ] && [ -d /proc/$2 ]; do sleep 1; done; for i in 1 2 3 4 5 6 7 8 9 10; do kill -TERM -$2 2>/dev/null || [ -d /proc/$2 ] || exit 0; sleep 0.3; done; kill -KILL -$2' watchdog $a $c >/dev/null 2>&1 &
w=$!
while :; do wait $c; s=$?; [ -d /proc/$c ] || break; done
kill -KILL -$w 2>/dev/null
exit $s`;

/** argv wrapped so that the command ends when its anchor (the SSH connection, or pgrep) goes away. */
export function tethered(anchor: "sshd" | "parent", argv: readonly string[]): string[] {
  return ["sh", "-c", SCRIPT, "pgrep-tether", anchor, ...argv];
}

/**
 * Takes the wrapper's pid line off the front of a stderr stream. Feed it chunks; it returns the text that
 * belongs to the command and calls onPid once.
 */
export function pidStripper(onPid: (pid: number) => void): (chunk: string) => string {
  let head = "";
  let done = false;
  return (chunk) => {
    if (done) return chunk;
    head += chunk;
    if (!PID_MARK.startsWith(head.slice(0, PID_MARK.length))) {
      done = true;
      return head;
    }
    const nl = head.indexOf("\n");
    if (nl < 0) return "";
    done = true;
    const pid = Number(head.slice(PID_MARK.length, nl));
    if (Number.isInteger(pid) && pid > 1) onPid(pid);
    return head.slice(nl + 1);
  };
}
