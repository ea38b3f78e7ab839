#!/usr/bin/env bash
# Makes this machine able to run the test suite: Debian packages, a Docker engine and the rig image.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
IMAGE=${PGREP_RIG_IMAGE:-pgrep-rig:bookworm-pg15}
BASE_IMAGE=${PGREP_RIG_BASE:-pgrep-base:bookworm}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
say() { echo "rig: $*"; }

need=()
for pair in docker:docker.io dockerd:docker.io debootstrap:debootstrap rsync:rsync \
            sshd:openssh-server ssh-keygen:openssh-client pg_ctlcluster:postgresql-common; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  $SUDO sh -c 'nohup dockerd --iptables=false >/var/log/pgrep-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "rig: dockerd did not start; see /var/log/pgrep-dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  base=debian:bookworm-slim
  if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
    base=$BASE_IMAGE
    if ! docker image inspect "$base" >/dev/null 2>&1; then
      # No registry: build the base from Debian packages. The mirror is the one apt already uses.
      mirror=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true) \
        | sed -nE 's/^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)(https?:[^[:space:]]+).*/\3/p' \
        | grep -v -- '-security' | head -n1 || true)
      mirror=${mirror:-http://deb.debian.org/debian}
      root=$(mktemp -d /var/tmp/pgrep-rootfs.XXXXXX)
      say "debootstrap bookworm from $mirror (about a minute)"
      $SUDO debootstrap --variant=minbase \
        --include=postgresql-15,openssh-server,rsync,sudo,iproute2,procps,ca-certificates \
        bookworm "$root" "$mirror" >/dev/null
      $SUDO rm -f "$root"/etc/ssh/ssh_host_*
      $SUDO tar -C "$root" -c . | docker import - "$base" >/dev/null
      $SUDO rm -rf "$root"
    fi
  fi
  say "building $IMAGE from $base"
  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" -t "$IMAGE" "$here" >/dev/null
fi
say "ready ($IMAGE)"
