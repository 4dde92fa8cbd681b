#!/usr/bin/env bash
# A real single-instance Neo4j Community server for tests and local runs, built from the Maven
# Central jars (org.neo4j:neo4j, whose server entry point is org.neo4j.server.CommunityEntryPoint),
# so neither Docker nor a Neo4j download is needed. Bolt only, on loopback, with auth.
#
#   deploy/local/neo4j.sh up       start (idempotent); the bolt URI is the last stdout line
#   deploy/local/neo4j.sh down     stop and wait
#   deploy/local/neo4j.sh status   exit 0 when running
#
# `up` and `status` accept a server that neo4j.sh started for another checkout on the same port
# (CI tests a fresh clone on the machine where a developer's server may still run).
#
# Environment: NEO4J_VERSION (5.26.30), NEO4J_PORT (17687), NEO4J_PASSWORD (hartonomous-test; user
# neo4j), NEO4J_DIR (<repo>/.hartonomous/neo4j), HARTONOMOUS_CACHE (~/.cache/hartonomous),
# NEO4J_HEAP_OPTS (-Xms256m -Xmx512m), NEO4J_PAGECACHE (128m), NEO4J_START_TIMEOUT (120 seconds),
# JAVA_HOME.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${NEO4J_VERSION:-5.26.30}"
port="${NEO4J_PORT:-17687}"
password="${NEO4J_PASSWORD:-hartonomous-test}"
cache="${HARTONOMOUS_CACHE:-$HOME/.cache/hartonomous}/neo4j-$version"
libs="$cache/libs"
dir="${NEO4J_DIR:-$repo/.hartonomous/neo4j}"
pidfile="$dir/neo4j.pid"
outfile="$dir/neo4j.out"
logfile="$dir/logs/neo4j.log"
uri="bolt://127.0.0.1:$port"
start_timeout="${NEO4J_START_TIMEOUT:-120}"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
main_class="org.neo4j.server.CommunityEntryPoint"
name=neo4j.sh
product="Neo4j Community"
pom_dir="$here/neo4j"
version_property=neo4j.version
artifact=org.neo4j:neo4j
marker="$main_class --home-dir=$dir "
address="$uri"
what=server
port_variable=NEO4J_PORT
instance_pattern='CommunityEntryPoint --home-dir=([^ ]+) '
# shellcheck source=deploy/local/common.sh
source "$here/common.sh"

log_tail() {
  local log
  for log in "${1:-$logfile}" "$outfile"; do
    if [[ -s "$log" ]]; then
      say "last lines of $log:"
      tail -n 40 "$log" >&2
    fi
  done
}

instance_log() {
  printf '%s\n' "$1/logs/neo4j.log"
}

# Ready: bolt answers and the server of directory $1 logged the end of its startup.
ready_at() {
  port_open "$port" && grep -q "INFO  Started\.$" "$(instance_log "$1")" 2>/dev/null
}

on_ready() {
  check_password
}

write_config() {
  mkdir -p "$dir/conf"
  cat >"$dir/conf/neo4j.conf" <<EOF
# Written by deploy/local/neo4j.sh on every start; edit the script, not this file.
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:$port
server.bolt.advertised_address=127.0.0.1:$port
# Bolt only: the Python driver needs nothing else, and no second port can collide.
server.http.enabled=false
server.https.enabled=false
dbms.security.auth_enabled=true
server.memory.pagecache.size=${NEO4J_PAGECACHE:-128m}
# Offline machines (CI) must not try to phone home.
dbms.usage_report.enabled=false
# A test server: keep little transaction log on disk.
db.tx_log.rotation.retention_policy=2 files
db.tx_log.rotation.size=16M
EOF
}

password_digest() {
  printf '%s' "$password" | sha256sum | cut -d' ' -f1
}

# The password is set once, before the first start; a later NEO4J_PASSWORD cannot change it.
check_password() {
  [[ -f "$dir/data/dbms/auth.ini" ]] || return 0
  [[ "$(cat "$dir/.password.sha256" 2>/dev/null)" == "$(password_digest)" ]] ||
    die "the server in $dir was set up with another NEO4J_PASSWORD (delete $dir/data to reset it)"
}

# Through Neo4j's own admin tool; remembered as a digest so check_password can compare.
set_initial_password() {
  check_password
  [[ -f "$dir/data/dbms/auth.ini" ]] && return 0
  NEO4J_HOME="$dir" NEO4J_CONF="$dir/conf" "$java" -Xmx256m -cp "$libs/*" org.neo4j.cli.AdminTool \
    dbms set-initial-password "$password" </dev/null >"$outfile" 2>&1 8>&- 9>&- || {
    log_tail "$outfile"
    die "setting the initial password failed"
  }
  password_digest >"$dir/.password.sha256"
}

start() {
  write_config
  set_initial_password
  mkdir -p "$dir/logs"
  [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.1"
  say "starting Neo4j Community $version on $uri (data in $dir)"
  local -a detach=()
  # Its own session, so a Ctrl-C aimed at the caller (e.g. pytest) does not kill the server.
  command -v setsid >/dev/null && detach=(setsid)
  # The JVM flags are those the Neo4j distribution's own launcher adds.
  # shellcheck disable=SC2086 # NEO4J_HEAP_OPTS holds several flags.
  ${detach[@]+"${detach[@]}"} "$java" ${NEO4J_HEAP_OPTS:--Xms256m -Xmx512m} \
    -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+DisableExplicitGC \
    -XX:+ExitOnOutOfMemoryError -Djdk.nio.maxCachedBufferSize=1024 \
    -Dio.netty.tryReflectionSetAccessible=true -Dlog4j2.disable.jmx=true \
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED -Djava.awt.headless=true \
    -cp "$libs/*" "$main_class" --home-dir="$dir" --config-dir="$dir/conf" \
    </dev/null >"$outfile" 2>&1 8>&- 9>&- &
  printf '%s\n' "$!" >"$pidfile"
}

extra_command() {
  say "usage: $0 up|down|status"
  exit 2
}

main "$@"
