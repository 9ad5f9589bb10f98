#!/usr/bin/env bash
# Checks what the sandbox (moto + PostgreSQL) needs, installs PostgreSQL from Debian's
# packages when it is missing and we may, and otherwise fails saying what to install.
# Tests never skip when these are missing: they fail, and this script says why first.
set -euo pipefail

fail() { echo "sandbox-deps: $*" >&2; exit 1; }

pg_bin() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

if ! pg_bin >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "sandbox-deps: PostgreSQL is missing; installing it from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # The package starts a cluster of its own; the sandbox runs its own instances.
    command -v pg_ctlcluster >/dev/null 2>&1 && pg_ctlcluster --force "$(ls /usr/lib/postgresql | sort -V | tail -1)" main stop 2>/dev/null || true
  fi
  pg_bin >/dev/null || fail "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian: apt-get install postgresql)"
fi

command -v python3 >/dev/null 2>&1 || fail "python3 not found: install python3 and moto (pip install 'moto[server]')"
python3 -c 'import moto, flask' 2>/dev/null || fail "python3 cannot import moto and flask: install them (pip install 'moto[server]'; moto 5.x)"
echo "sandbox-deps: ok (PostgreSQL in $(pg_bin), moto $(python3 -c 'import moto; print(moto.__version__)'))"
