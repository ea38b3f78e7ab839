// Prints resolve_NAME=<addresses> for one name. Bounded: a resolver that cannot answer must not hold up
// the run (timeout is coreutils'). Each line starts with an address (each address is on several lines);
// the reader sorts them.
const RESOLVE_FUNCTION = String.raw`resolve() {
  a=$1; t=""; command -v timeout >/dev/null && t="timeout 3"
  ips=""; r=$($t getent ahosts "$a")
  while read -r ip _rest; do case " $ips" in *" $ip "*) ;; *) ips="$ips$ip ";; esac; done <<PGREP_EOF
$r
PGREP_EOF
  echo "resolve_$a=$ips"
}`;

/** Looks up the names given as arguments, as the probe's resolve items do. */
export const RESOLVE_SCRIPT = `${RESOLVE_FUNCTION}\nfor n in "$@"; do resolve "$n"; done`;

// Shell run on each host, as root or as the PostgreSQL OS user, reading everything observe needs in one
// round trip. Prints key=value lines; file contents are base64 so that any byte survives.
// Arguments: os_user bin_dir major data_dir, then items "file:KEY=PATH" ("~/" = the OS user's home)
// "sha:KEY=PATH" (only a file's sha256: keys stay on their host), "port:N", "resolve:NAME", and
// "sql:direct|runuser": when the server runs, the query on stdin is run with psql as the OS user (directly,
// or through runuser when the probe runs as root) and its one-line JSON answer printed as sql_json.
// Every fork costs a few milliseconds and observe runs this on every host for every command, so the
// script leans on shell builtins: parameter expansion instead of cut/sed, read instead of cat.
// "%{" stands for the shell's "${", which a template literal cannot hold.
export const PROBE_SCRIPT = String.raw`
echo "read_at=$(date +%s%N)"
${RESOLVE_FUNCTION}
osuser=$1; bindir=$2; major=$3; datadir=$4; shift 4; running=""; ver=""; psqlbin=""
# One word of a list, without a subshell (a function's arguments are its own).
word() { w=$1; }
pw=$(getent passwd "$osuser"); home=%{pw#*:*:*:*:*:}; home=%{home%%:*}
if [ -n "$home" ]; then echo "os_user_exists=1"; else echo "os_user_exists=0"; fi
printf 'home=%s\n' "$home"
[ -d /run/systemd/system ] && echo "systemd=1"
command -v rsync >/dev/null && echo "rsync=1"
if [ -z "$bindir" ] && [ -n "$major" ]; then
  # The packaged layouts name the major in the path: no need to run postgres --version.
  for d in /usr/lib/postgresql/$major/bin /usr/pgsql-$major/bin; do
    if [ -x "$d/postgres" ]; then bindir=$d; ver=$major; break; fi
  done
fi
if [ -z "$bindir" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin /usr/pgsql-*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/postgres" ] || continue
    if [ -z "$major" ] || "$d/postgres" --version | grep -q " $major\."; then bindir=$d; break; fi
  done
fi
printf 'bin_dir=%s\n' "$bindir"
[ -n "$bindir" ] && [ -x "$bindir/pg_rewind" ] && echo "pg_rewind=1"
if [ -n "$ver" ]; then echo "bin_version=$ver"
elif [ -n "$bindir" ] && [ -x "$bindir/postgres" ]; then echo "bin_version=$("$bindir/postgres" --version | sed -E 's/^[^0-9]*([0-9]+(\.[0-9]+)?).*/\1/')"; fi
# psql of any major 10+ talks to every server; pg_basebackup must be the server's own major (it refuses newer
# servers, and a newer one writes settings an older walreceiver rejects), so its version is reported too.
for tool in psql pg_basebackup; do
  if [ -n "$bindir" ] && [ -x "$bindir/$tool" ]; then p="$bindir/$tool"; v=$ver; else p=$(command -v $tool || true); v=""; fi
  printf '%s=%s\n' "$tool" "$p"
  [ "$tool" = psql ] && psqlbin=$p
  if [ -n "$p" ]; then
    [ -n "$v" ] || v=$("$p" --version 2>/dev/null | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
    echo "$tool""_version=$v"
  fi
done
if [ -d "$datadir" ]; then
  echo "data_dir_exists=1"
  n=0; for f in "$datadir"/* "$datadir"/.[!.]* "$datadir"/..?*; do if [ -e "$f" ] || [ -L "$f" ]; then n=$((n + 1)); fi; done
  echo "data_dir_entries=$n"
  [ -r "$datadir/PG_VERSION" ] && read -r v < "$datadir/PG_VERSION" && echo "pg_version=$v"
  if [ -r "$datadir/global/pg_control" ]; then word $(od -An -t u8 -N8 "$datadir/global/pg_control"); echo "sysid=$w"; fi
  if [ -r "$datadir/postmaster.pid" ]; then
    pid=""; st=""; { read -r pid; read -r _d; read -r st; } < "$datadir/postmaster.pid"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      running=1; echo "running=1"; echo "pid=$pid"; echo "started_at=$st"
    fi
  fi
  for f in standby.signal recovery.conf recovery.signal; do [ -e "$datadir/$f" ] && echo "has_$f=1"; done
  [ -e "$datadir.pgrep-copy" ] && echo "copy_unfinished=1"
  [ -e "$datadir.pgrep-rejoin" ] && echo "needs_rejoin=1"
  # Slots on disk, known even while the server is stopped (a former primary's, for its old standbys).
  if [ -d "$datadir/pg_replslot" ]; then
    slots=""; for f in "$datadir"/pg_replslot/*; do [ -e "$f" ] && slots="$slots%{f##*/} "; done
    echo "slots_on_disk=$slots"
  fi
else
  echo "data_dir_exists=0"
fi
for item in "$@"; do
  case "$item" in
    file:*|sha:*) kind=%{item%%:*}; rest=%{item#*:}; key=%{rest%%=*}; path=%{rest#*=}
      case "$path" in "~/"*) path="$home/%{path#??}";; esac
      if [ "$kind" = file ]; then
        printf 'path_%s=%s\n' "$key" "$path"
        if [ -r "$path" ]; then printf 'file_%s=' "$key"; base64 -w0 < "$path"; echo; elif [ -e "$path" ]; then echo "unreadable_$key=1"; fi
      elif [ -r "$path" ]; then word $(sha256sum < "$path"); echo "sha_$key=$w"; fi;;
    port:*) p=%{item#port:}
      # Another program on the port while this server is down (ss from iproute2; unknown without it).
      if [ -z "$running" ] && command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then echo "port_busy=1"; fi;;
    resolve:*) resolve "%{item#resolve:}";;
    sql:*) if [ -n "$running" ] && [ -n "$psqlbin" ]; then
        { read -r _l1; read -r _l2; read -r _l3; read -r port; read -r sock; } < "$datadir/postmaster.pid"
        as=""; [ "%{item#sql:}" = runuser ] && as="runuser -u $osuser --"
        # From /: psql run as another user warns on stderr when it cannot enter the current directory.
        if out=$(cd / && $as "$psqlbin" -X -q -A -t -v ON_ERROR_STOP=1 -h "%{sock:-/tmp}" -p "$port" -d postgres 2>&1); then
          # printf, never echo: dash's echo turns the JSON's \n and \t escapes into line breaks and tabs.
          printf 'sql_json=%s\n' "$out"
        else printf 'sql_error=%s\n' "$(printf '%s' "$out" | base64 -w0)"; fi
      fi;;
  esac
done
`.replaceAll("%{", "${");

export function parseKv(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}
