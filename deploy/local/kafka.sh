#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker + controller) for tests and local runs,
# built from the Maven Central jars, so neither Docker nor a Kafka download is needed.
#
#   deploy/local/kafka.sh up         start (idempotent); the bootstrap address is the last stdout line
#   deploy/local/kafka.sh down       stop and wait
#   deploy/local/kafka.sh status     exit 0 when running
#
# `up` and `status` accept a broker that kafka.sh started for another checkout on the same port
# (CI tests a fresh clone on the machine where a developer's broker may still run).
#   deploy/local/kafka.sh perf-jars  the directory of the jars (with kafka-tools' ProducerPerformance)
#
# Environment: KAFKA_VERSION (4.1.1), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (KAFKA_PORT + 1),
# KAFKA_DIR (<repo>/.hartonomous/kafka), HARTONOMOUS_CACHE (~/.cache/hartonomous),
# KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), KAFKA_START_TIMEOUT (90 seconds), JAVA_HOME.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${KAFKA_VERSION:-4.1.1}"
port="${KAFKA_PORT:-19092}"
controller_port="${KAFKA_CONTROLLER_PORT:-$((port + 1))}"
cache="${HARTONOMOUS_CACHE:-$HOME/.cache/hartonomous}/kafka-$version"
libs="$cache/libs"
dir="${KAFKA_DIR:-$repo/.hartonomous/kafka}"
pidfile="$dir/kafka.pid"
logfile="$dir/kafka.log"
bootstrap="127.0.0.1:$port"
start_timeout="${KAFKA_START_TIMEOUT:-90}"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
name=kafka.sh
product="Apache Kafka"
pom_dir="$here/kafka"
version_property=kafka.version
artifact=org.apache.kafka:kafka_2.13
marker="kafka.Kafka $dir/server.properties"
address="$bootstrap"
what=broker
port_variable=KAFKA_PORT
instance_pattern='kafka\.Kafka (.+)/server\.properties$'
# shellcheck source=deploy/local/common.sh
source "$here/common.sh"

log_tail() {
  local log="${1:-$logfile}"
  if [[ -f "$log" ]]; then
    say "last lines of $log:"
    tail -n 40 "$log" >&2
  fi
}

instance_log() {
  printf '%s\n' "$1/kafka.log"
}

# Ready: the port answers and the broker of directory $1 logged the end of its startup.
ready_at() {
  port_open "$port" && grep -q "Kafka Server started" "$(instance_log "$1")" 2>/dev/null
}

on_ready() { :; }

write_config() {
  cat >"$dir/server.properties" <<EOF
# Written by deploy/local/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
# Topics are provisioned explicitly (with infinite retention) by the event log adapter.
auto.create.topics.enable=false
num.partitions=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions: the first group join and transaction come up faster on a small box.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# Storage is formatted once; later starts reuse the data (and so the topics) in $dir/data.
format_storage() {
  [[ -f "$dir/data/meta.properties" ]] && return 0
  local cluster_id
  # A Kafka cluster id is 16 random bytes in unpadded base64url; a leading '-' would read as a flag.
  cluster_id="-"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  say "formatting $dir/data (cluster id $cluster_id)"
  "$java" -cp "$libs/*" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$dir/server.properties" \
    >"$logfile" 2>&1 8>&- 9>&- || {
    log_tail
    die "formatting the storage in $dir/data failed"
  }
}

start() {
  port_open "$controller_port" && die "port $controller_port is taken by another process (set KAFKA_CONTROLLER_PORT)"
  write_config
  format_storage
  [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.1"
  say "starting Kafka $version on $bootstrap (data in $dir)"
  local -a detach=()
  # Its own session, so a Ctrl-C aimed at the caller (e.g. pytest) does not kill the broker.
  command -v setsid >/dev/null && detach=(setsid)
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several flags.
  ${detach[@]+"${detach[@]}"} "$java" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >"$logfile" 2>&1 8>&- 9>&- &
  printf '%s\n' "$!" >"$pidfile"
}

extra_command() {
  case "${1:-}" in
    perf-jars)
      fetch_jars
      printf '%s\n' "$libs"
      ;;
    *)
      say "usage: $0 up|down|status|perf-jars"
      exit 2
      ;;
  esac
}

main "$@"
