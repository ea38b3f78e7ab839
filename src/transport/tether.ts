// Every process pgrep starts on a host runs under this wrapper, so that it never outlives the pgrep that
// started it. sshd does not signal a command without a terminal when the connection drops, and
// pg_basebackup ignores SIGPIPE, so a copy would otherwise go on streaming after pgrep was killed.
//
// Over SSH the command starts in / (commands take absolute paths). A connection can also go silent (packets
// dropped, not closed): sshd then keeps it, and the command, for as long as TCP lets it. So pgrep beats a
// heartbeat on every connection (HEARTBEAT_SCRIPT writes a counter into a file of its own), and the
// watchdog also ends the command when that counter stops for 8 s, or when the file it saw goes (the
// connection closed). A command whose connection has no heartbeat file runs on the sshd anchor alone.
// The wrapper prints its pid on stderr (how kill() reaches it), runs the command in its own session with
// the wrapper's stdin, and a watchdog ends the command's whole process group once the anchor is gone:
// the sshd process of the connection (over SSH), or pgrep itself (local). A TERM to the wrapper is passed
// to the group too. The exit status is the command's.

export const PID_MARK = "\x1epgrep-pid ";

// POSIX sh (dash): builtins only where it runs for every command, and `kill -SIG -PGID` (dash has no `--`).
// Whether a process is still there is asked of /proc, never of `kill -0`: a command run through sudo is
// a root process for moments of its life, and the login user's `kill -0` then fails (EPERM) although it
// runs; taken for "gone", that ended the command a moment later, when the signal got through again.
const SCRIPT = String.raw`mode=$1; hb=$2; shift 2
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
s=; [ -n "$hb" ] && [ -e "$hb" ] && s=1
setsid sh -c 'last=; seen=$4; miss=0
while [ -d /proc/$1 ] && [ -d /proc/$2 ]; do
  if [ -n "$3" ]; then
    if [ -e "$3" ]; then v=; read -r v < "$3"; seen=1; if [ "$v" = "$last" ]; then miss=$((miss+1)); else miss=0; last=$v; fi
    elif [ -n "$seen" ]; then break; fi
    [ "$miss" -ge 8 ] && break
  fi
  sleep 1
done
for i in 1 2 3 4 5 6 7 8 9 10; do kill -TERM -$2 2>/dev/null || [ -d /proc/$2 ] || exit 0; sleep 0.3; done; kill -KILL -$2' watchdog $a $c "$hb" "$s" >/dev/null 2>&1 &
w=$!
while :; do wait $c; s=$?; [ -d /proc/$c ] || break; done
kill -KILL -$w 2>/dev/null
exit $s`;

/**
 * argv wrapped so that the command ends when its anchor (the SSH connection, or pgrep) goes away, or its
 * connection's heartbeat (`heartbeat`: the file HEARTBEAT_SCRIPT keeps; "" for none) stops.
 */
export function tethered(anchor: "sshd" | "parent", argv: readonly string[], heartbeat = ""): string[] {
  return ["sh", "-c", SCRIPT, "pgrep-tether", anchor, heartbeat, ...argv];
}

/**
 * Runs for the life of a connection, as its login user: every line pgrep sends bumps a counter in the file
 * $1 (made new, never through an existing name), which goes when the connection closes. Readable by all,
 * writable by its owner: the wrappers of commands run as other users (postgres) read it.
 */
export const HEARTBEAT_SCRIPT = 'f=$1; umask 022; set -C; : > "$f" || exit 1; set +C; trap \'rm -f "$f"\' EXIT; trap \'exit 1\' HUP INT TERM; n=0; while read -r _; do n=$((n+1)); echo "$n" > "$f"; done';

/** How often pgrep beats; the watchdog gives up after 8 s without a beat. */
export const HEARTBEAT_MS = 2_000;

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
