#!/usr/bin/env bash
# Makes this machine able to run the test suite: Debian packages, a Docker engine and the rig image.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
IMAGE=${PGREP_RIG_IMAGE:-pgrep-rig:bookworm-pg15}
PACKAGES=postgresql-15,postgresql-15-repmgr,openssh-server,rsync,sudo,iproute2,procps,ca-certificates,tini,strace
# The base's tag names its package list, so a changed list makes a new base.
BASE_IMAGE=${PGREP_RIG_BASE:-pgrep-base:bookworm-$(printf %s "$PACKAGES" | md5sum | cut -c1-8)}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
say() { echo "rig: $*"; }

# strace: a unit test makes a kill() fail on purpose (test/unit/transport/tether.test.ts).
need=()
for pair in docker:docker.io dockerd:docker.io debootstrap:debootstrap rsync:rsync \
            sshd:openssh-server ssh-keygen:openssh-client pg_ctlcluster:postgresql-common \
            strace:strace; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
# A real application client for app-config's Rails output (ActiveRecord, the pg gem, and actionpack for
# the DatabaseSelector middleware the initializer inserts), and ruby -c.
for pkg in ruby ruby-activerecord ruby-pg ruby-actionpack; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
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

have() { docker image inspect "$1" >/dev/null 2>&1; }
# The Debian mirror apt already uses: for a base image made by debootstrap, and the upgrade image's apt.
mirror=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true) \
  | sed -nE 's/^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)(https?:[^[:space:]]+).*/\3/p' \
  | grep -v -- '-security' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
if have "$BASE_IMAGE"; then base=$BASE_IMAGE
elif have debian:bookworm-slim || docker pull -q debian:bookworm-slim >/dev/null 2>&1; then base=debian:bookworm-slim
else
  # No registry: build the base from Debian packages, from the mirror apt already uses.
  base=$BASE_IMAGE
  root=$(mktemp -d /var/tmp/pgrep-rootfs.XXXXXX)
  say "debootstrap bookworm from $mirror (about a minute)"
  $SUDO debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$mirror" >/dev/null
  $SUDO rm -f "$root"/etc/ssh/ssh_host_*
  $SUDO tar -C "$root" -c . | docker import - "$base" >/dev/null
  $SUDO rm -rf "$root"
fi
# Always built: the layer cache makes this a no-op when neither the base nor the Dockerfile changed.
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" -t "$IMAGE" "$here" >/dev/null
# pgrep upgrade's hosts: the same image with PostgreSQL 13 from bullseye beside 15 (apt inside the build
# reaches the mirror through the host's network).
UPGRADE_IMAGE=${PGREP_UPGRADE_IMAGE:-pgrep-rig:bookworm-pg13-15}
DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE="$IMAGE" --build-arg MIRROR="$mirror" \
  -f "$here/Dockerfile.upgrade" -t "$UPGRADE_IMAGE" "$here" >/dev/null
bash "$here/fetch-postgres.sh" >/dev/null
say "ready ($IMAGE, $UPGRADE_IMAGE, PostgreSQL 10–18 server builds cached)"
