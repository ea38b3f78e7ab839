// Shell run on each host, as root or as the PostgreSQL OS user, reading everything observe needs in one
// round trip. Prints key=value lines; file contents are base64 so that any byte survives.
// Arguments: os_user bin_dir major data_dir, then items "file:KEY=PATH" ("~/" = the OS user's home)
// "sha:KEY=PATH" (only a file's sha256: keys stay on their host), "port:N" and "resolve:NAME".
export const PROBE_SCRIPT = String.raw`
osuser=$1; bindir=$2; major=$3; datadir=$4; shift 4; running=""
home=$(getent passwd "$osuser" | cut -d: -f6)
echo "os_user_exists=$([ -n "$home" ] && echo 1 || echo 0)"
echo "home=$home"
[ -d /run/systemd/system ] && echo "systemd=1"
command -v rsync >/dev/null && echo "rsync=1"
if [ -z "$bindir" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin /usr/pgsql-*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/postgres" ] || continue
    if [ -z "$major" ] || "$d/postgres" --version | grep -q " $major\."; then bindir=$d; break; fi
  done
fi
echo "bin_dir=$bindir"
[ -n "$bindir" ] && [ -x "$bindir/pg_rewind" ] && echo "pg_rewind=1"
if [ -n "$bindir" ] && [ -x "$bindir/postgres" ]; then echo "bin_version=$("$bindir/postgres" --version | sed -E 's/^[^0-9]*([0-9]+(\.[0-9]+)?).*/\1/')"; fi
# psql of any major 10+ talks to every server; pg_basebackup must be the server's own major (it refuses newer
# servers, and a newer one writes settings an older walreceiver rejects), so its version is reported too.
for tool in psql pg_basebackup; do
  if [ -n "$bindir" ] && [ -x "$bindir/$tool" ]; then p="$bindir/$tool"; else p=$(command -v $tool || true); fi
  echo "$tool=$p"
  [ -n "$p" ] && echo "$tool""_version=$("$p" --version 2>/dev/null | sed -E 's/^[^0-9]*([0-9]+).*/\1/')"
done
if [ -d "$datadir" ]; then
  echo "data_dir_exists=1"
  echo "data_dir_entries=$(ls -A "$datadir" | wc -l)"
  [ -r "$datadir/PG_VERSION" ] && echo "pg_version=$(cat "$datadir/PG_VERSION")"
  [ -r "$datadir/global/pg_control" ] && echo "sysid=$(od -An -t u8 -N8 "$datadir/global/pg_control" | tr -d ' ')"
  if [ -r "$datadir/postmaster.pid" ]; then
    pid=$(sed -n 1p "$datadir/postmaster.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      running=1; echo "running=1"; echo "pid=$pid"; echo "started_at=$(sed -n 3p "$datadir/postmaster.pid")"
    fi
  fi
  for f in standby.signal recovery.conf recovery.signal; do [ -e "$datadir/$f" ] && echo "has_$f=1"; done
  [ -e "$datadir.pgrep-copy" ] && echo "copy_unfinished=1"
  [ -e "$datadir.pgrep-rejoin" ] && echo "needs_rejoin=1"
  # Slots on disk, known even while the server is stopped (a former primary's, for its old standbys).
  [ -d "$datadir/pg_replslot" ] && echo "slots_on_disk=$(ls "$datadir/pg_replslot" 2>/dev/null | tr '\n' ' ')"
else
  echo "data_dir_exists=0"
fi
for item in "$@"; do
  case "$item" in
    file:*) key=$(printf %s "$item" | cut -d: -f2- | cut -d= -f1); path=$(printf %s "$item" | cut -d= -f2-)
      case "$path" in "~/"*) path="$home/$(printf %s "$path" | cut -c3-)";; esac
      echo "path_$key=$path"
      if [ -r "$path" ]; then printf 'file_%s=' "$key"; base64 -w0 < "$path"; echo; elif [ -e "$path" ]; then echo "unreadable_$key=1"; fi;;
    sha:*) key=$(printf %s "$item" | cut -d: -f2- | cut -d= -f1); path=$(printf %s "$item" | cut -d= -f2-)
      case "$path" in "~/"*) path="$home/$(printf %s "$path" | cut -c3-)";; esac
      if [ -r "$path" ]; then echo "sha_$key=$(sha256sum < "$path" | cut -d' ' -f1)"; fi;;
    port:*) p=$(printf %s "$item" | cut -d: -f2)
      # Another program on the port while this server is down (ss from iproute2; unknown without it).
      if [ -z "$running" ] && command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then echo "port_busy=1"; fi;;
    # Bounded: a resolver that cannot answer must not hold up the run (timeout is coreutils').
    resolve:*) a=$(printf %s "$item" | cut -d: -f2-); t=""; command -v timeout >/dev/null && t="timeout 3"
      echo "resolve_$a=$($t getent ahosts "$a" | awk '{print $1}' | sort -u | tr '\n' ' ')";;
  esac
done
`;

export function parseKv(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}
