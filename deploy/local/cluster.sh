#!/usr/bin/env bash
# The topology deploy/k8s describes, on one machine: real Apache Kafka, PostgreSQL, Neo4j and an
# S3-compatible store (moto's server), and every service its own `hartonomous serve` process,
# with two replicas each of the gateway, inference and search. Services find each other by
# configuration only: the HARTONOMOUS_* variables the Kubernetes ConfigMap sets. As there, the
# topics are created once (`hartonomous topics --create`, the Job `topics`) and the services
# only check for them.
#
#   deploy/local/cluster.sh up       start it afresh (or what is missing of a running one) and
#                                    print a gateway's banner, as `make run` does: its URL, the
#                                    admin key (on the first start only) and a quick start
#   deploy/local/cluster.sh stop     stop the services, keeping the servers and their data (an
#                                    `up` then restarts the services on them)
#   deploy/local/cluster.sh down     stop the services, then the cluster's servers
#   deploy/local/cluster.sh status   each process and whether it runs; exit 0 when all do
#
# The cluster is for trying the topology and testing it: its servers are its own (their own
# directories under CLUSTER_DIR and their own ports, apart from the suite's Kafka and Neo4j),
# the S3 server keeps blobs in memory, and an `up` with nothing running starts from empty.
#
# Search replicas keep a projection of their own (HARTONOMOUS_SEARCH_REPLICA: their own consumer
# group, join schema and store), each rebuilt from the log: the embedded store has one owning
# process, and no Qdrant server runs here to share. Inference replicas share one consumer group
# (they split the embedding work) and gRPC clients balance across them (round robin).
#
# Environment: CLUSTER_DIR (<repo>/.hartonomous/cluster), CLUSTER_HTTP_PORT (18000; the second
# gateway +1), CLUSTER_GRPC_PORT (51100; one port per process from there), CLUSTER_METRICS_PORT
# (19100), CLUSTER_S3_PORT (15900), CLUSTER_KAFKA_PORT (29092; its controller +1),
# CLUSTER_POSTGRES_PORT (25432), CLUSTER_NEO4J_PORT (27687), CLUSTER_GENERATION_SLOTS (8; 0 skips
# loading SmolLM2), CLUSTER_REPLICAS (2: of the gateway, inference and search),
# CLUSTER_START_TIMEOUT (300 seconds).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${CLUSTER_DIR:-$repo/.hartonomous/cluster}"
bin="$repo/.venv/bin"
http_port="${CLUSTER_HTTP_PORT:-18000}"
grpc_port="${CLUSTER_GRPC_PORT:-51100}"
metrics_port="${CLUSTER_METRICS_PORT:-19100}"
s3_port="${CLUSTER_S3_PORT:-15900}"
generation_slots="${CLUSTER_GENERATION_SLOTS:-8}"
start_timeout="${CLUSTER_START_TIMEOUT:-300}"
replicas="${CLUSTER_REPLICAS:-2}"
bucket=hartonomous-blobs
# The cluster's own servers (the scripts read these).
export KAFKA_DIR="$dir/kafka" KAFKA_PORT="${CLUSTER_KAFKA_PORT:-29092}"
export KAFKA_CONTROLLER_PORT="${CLUSTER_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
export POSTGRES_DIR="$dir/postgres" POSTGRES_PORT="${CLUSTER_POSTGRES_PORT:-25432}"
export NEO4J_DIR="$dir/neo4j" NEO4J_PORT="${CLUSTER_NEO4J_PORT:-27687}"
servers=(kafka.sh postgres.sh neo4j.sh)
# "service replicas": the processes, in start order (stores and consumers before the gateway).
topology=(
  "ingest 1" "inference $replicas" "search $replicas" "provenance 1" "billing 1" "control 1"
  "ooda-observe 1" "ooda-orient 1" "ooda-decide 1" "ooda-act 1" "ooda-learn 1" "gateway $replicas"
)

say() { printf 'cluster.sh: %s\n' "$*" >&2; }
# shellcheck source=deploy/local/process.sh
source "$here/process.sh"
die() {
  say "error: $*"
  exit 1
}

# Every process as "name service index grpc metrics http": name is <service>-<n>.
processes() {
  local i=0 entry service count n
  for entry in "${topology[@]}"; do
    read -r service count <<<"$entry"
    for ((n = 1; n <= count; n++)); do
      local http=""
      [[ $service == gateway ]] && http=$((http_port + n - 1))
      printf '%s %s %s %s %s %s\n' "$service-$n" "$service" "$n" \
        $((grpc_port + i)) $((metrics_port + i)) "${http:--}"
      i=$((i + 1))
    done
  done
}

# ipv4:127.0.0.1:a,127.0.0.1:b - the gRPC ports of a service's replicas.
address_of() {
  local name service n grpc rest ports=()
  while read -r name service n grpc rest; do
    [[ $service == "$1" ]] && ports+=("127.0.0.1:$grpc")
  done < <(processes)
  local IFS=,
  printf 'ipv4:%s\n' "${ports[*]}"
}

pid_of() {
  local pidfile="$dir/run/$1.pid" pid state
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  # A killed process whose parent is gone may linger as a zombie until init reaps it: not
  # running (kill -0 would still succeed).
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]] || return 1
  printf '%s\n' "$pid"
}

server() { # script up|down|status: the last stdout line of a server script
  "$here/$1" "$2" | tail -n 1
}

# Nothing of the cluster runs: start from empty (the S3 server's blobs did not survive).
fresh() {
  local name rest
  while read -r name rest; do
    pid_of "$name" >/dev/null && return 1
  done < <(processes; echo "s3 -")
  for script in "${servers[@]}"; do
    "$here/$script" status >/dev/null 2>&1 && return 1
  done
  return 0
}

start_servers() {
  if fresh; then
    rm -rf "$dir/kafka" "$dir/postgres" "$dir/neo4j" "$dir/data" "$dir/run/banner"
  fi
  mkdir -p "$dir/run" "$dir/logs"
  kafka="$(server kafka.sh up)"
  postgres="$(server postgres.sh up)"
  neo4j="$(server neo4j.sh up)"
  if ! pid_of s3 >/dev/null; then
    # In memory, as the blob contract suite runs it: blobs last as long as this server.
    setsid "$bin/python" -m moto.server -H 127.0.0.1 -p "$s3_port" >"$dir/logs/s3.log" 2>&1 &
    echo $! >"$dir/run/s3.pid"
  fi
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; do
    ((SECONDS < deadline)) || die "the S3 server did not start (see $dir/logs/s3.log)"
    sleep 0.3
  done
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$bin/python" -c "
import boto3, botocore
s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:$s3_port', region_name='us-east-1')
try:
    s3.create_bucket(Bucket='$bucket')
except botocore.exceptions.ClientError as exc:
    if exc.response['Error']['Code'] != 'BucketAlreadyOwnedByYou':
        raise
"
}

# The settings every process shares (the ConfigMap and Secret of deploy/k8s), quoted for
# `source` (the blob URL holds an '&').
shared_env() {
  cat <<EOF
HARTONOMOUS_KAFKA_BOOTSTRAP='$kafka'
HARTONOMOUS_POSTGRES_URL='$postgres'
HARTONOMOUS_NEO4J_URI='$neo4j'
HARTONOMOUS_NEO4J_USER='neo4j'
HARTONOMOUS_NEO4J_PASSWORD='${NEO4J_PASSWORD:-hartonomous-test}'
HARTONOMOUS_BLOB_URL='s3://$bucket?endpoint=http://127.0.0.1:$s3_port&region=us-east-1'
AWS_ACCESS_KEY_ID='testing'
AWS_SECRET_ACCESS_KEY='testing'
HARTONOMOUS_GENERATION_SLOTS='$generation_slots'
HARTONOMOUS_TOPIC_PROVISIONING='require'
HARTONOMOUS_INGEST_ADDR='$(address_of ingest)'
HARTONOMOUS_INFERENCE_ADDR='$(address_of inference)'
HARTONOMOUS_SEARCH_ADDR='$(address_of search)'
HARTONOMOUS_PROVENANCE_ADDR='$(address_of provenance)'
HARTONOMOUS_BILLING_ADDR='$(address_of billing)'
HARTONOMOUS_CONTROL_ADDR='$(address_of control)'
HARTONOMOUS_OODA_ADDR='$(address_of ooda-decide)'
EOF
}

# The topics, created once as the Kubernetes Job `topics` does: the services only check for
# them (HARTONOMOUS_TOPIC_PROVISIONING=require, as deploy/k8s sets it).
provision_topics() {
  (
    set -a
    # shellcheck disable=SC1091
    source "$dir/cluster.env"
    set +a
    "$bin/hartonomous" topics --create --data-dir "$dir/data/cli" >/dev/null
  ) || die "could not create the topics"
}

start_services() {
  local name service n grpc metrics http
  while read -r name service n grpc metrics http; do
    if pid_of "$name" >/dev/null; then
      continue
    fi
    mkdir -p "$dir/data/$name"
    (
      set -a
      # shellcheck disable=SC1091
      source "$dir/cluster.env"
      set +a
      export HARTONOMOUS_DATA_DIR="$dir/data/$name" HARTONOMOUS_GRPC_PORT="$grpc"
      export HARTONOMOUS_METRICS_PORT="$metrics"
      [[ $http == - ]] || export HARTONOMOUS_HTTP_PORT="$http"
      [[ $service == search ]] && export HARTONOMOUS_SEARCH_REPLICA="r$n"
      exec setsid "$bin/hartonomous" serve "$service" >"$dir/logs/$name.log" 2>&1
    ) &
    echo $! >"$dir/run/$name.pid"
    say "started $name (pid $!, gRPC port $grpc)"
  done < <(processes)
}

wait_ready() {
  local deadline=$((SECONDS + start_timeout)) name service n grpc rest
  for ((n = 0; n < replicas; n++)); do
    local url="http://127.0.0.1:$((http_port + n))/readyz"
    until curl -fs -o /dev/null "$url"; do
      while read -r name service rest; do
        pid_of "$name" >/dev/null || {
          tail -n 30 "$dir/logs/$name.log" >&2
          die "$name exited during startup (log: $dir/logs/$name.log)"
        }
      done < <(processes)
      ((SECONDS < deadline)) || die "not ready within ${start_timeout}s: $(curl -sS "$url" || true)"
      sleep 2
    done
  done
}

# What a gateway printed (its log holds it beside the JSON log lines): the one that created
# the bootstrap key on the first start, that same one on every later start.
banner() {
  local chosen="$dir/run/banner" each
  if [[ ! -f "$chosen" ]]; then
    echo gateway-1 >"$chosen"
    for each in "$dir"/logs/gateway-*.log; do
      grep -q 'shown this once' "$each" && basename "$each" .log >"$chosen"
    done
  fi
  grep -v '^{' "$dir/logs/$(<"$chosen").log"
}

up() {
  [[ -x "$bin/hartonomous" ]] || die "no $bin/hartonomous (run make setup)"
  start_servers
  shared_env >"$dir/cluster.env"
  provision_topics
  start_services
  wait_ready
  say "ready: $replicas gateway(s) on ports from $http_port up; logs in $dir/logs"
  say "stop with: deploy/local/cluster.sh down"
  banner
}

stop_process() {
  local pid
  if pid="$(pid_of "$1")"; then
    stop_pid "$pid"
  fi
  rm -f "$dir/run/$1.pid"
}

stop_services() {
  local name rest
  # The gateway first (no new requests), the stores last.
  while read -r name rest; do
    stop_process "$name" &
  done < <(processes | tac)
  wait
}

down() {
  stop_services
  stop_process s3
  local script
  for script in "${servers[@]}"; do
    "$here/$script" down || true
  done
  say "stopped"
}

status() {
  local name rest missing=0
  while read -r name rest; do
    if pid="$(pid_of "$name")"; then
      printf '%-16s running (pid %s)\n' "$name" "$pid"
    else
      printf '%-16s stopped\n' "$name"
      missing=1
    fi
  done < <(processes; echo "s3 -")
  return "$missing"
}

case "${1:-}" in
  up) up ;;
  stop) stop_services && say "services stopped; servers still running" ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|stop|down|status" ;;
esac
