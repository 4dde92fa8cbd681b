# Shared by the deploy/local server scripts (sourced, never run): the up/down/status commands
# and their plumbing. The sourcing script sets:
#   name (kafka.sh), product ("Apache Kafka"), version, dir, cache, libs, pidfile, java,
#   pom_dir (folder with pom.xml), version_property (kafka.version), artifact (for errors),
#   marker (a string of the server's command line that names this directory).
# shellcheck shell=bash disable=SC2154

say() { printf '%s: %s\n' "$name" "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# Serialises runs on one directory (concurrent test processes may all call `up`).
# fd 9 must not leak into the server, or the server would hold the lock forever.
lock_dir() {
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock -w 600 9 || die "timed out waiting for the lock $dir/.lock"
}

check_java() {
  command -v "$java" >/dev/null || die "java not found ($product $version needs Java 17 or newer; set JAVA_HOME)"
  local v
  v="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ "${v%%.*}" -ge 17 ]] || die "$product $version needs Java 17 or newer, $java is Java $v"
}

# Resolves the server with all runtime dependencies once per version; a partial download is
# never mistaken for a complete one (it is moved into place only when Maven succeeds).
fetch_jars() {
  [[ -f "$libs/.complete" ]] && return 0
  # Several checkouts may share the cache; fd 8 is closed for the server like fd 9.
  mkdir -p "$cache"
  exec 8>"$cache/.lock"
  flock -w 900 8 || die "timed out waiting for the lock $cache/.lock"
  [[ -f "$libs/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found (Maven fetches the $product jars on first use)"
  say "fetching $product $version jars into $libs (first run only)"
  local tmp
  tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
  cp "$pom_dir/pom.xml" "$tmp/pom.xml"
  if ! mvn -B --no-transfer-progress -f "$tmp/pom.xml" dependency:copy-dependencies \
    -D"$version_property"="$version" -DincludeScope=runtime -DoutputDirectory="$tmp/libs" \
    >"$tmp/mvn.log" 2>&1; then
    tail -n 40 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "Maven could not resolve $artifact:$version (see the output above)"
  fi
  rm -rf "$libs"
  mv "$tmp/libs" "$libs"
  rm -rf "$tmp"
  touch "$libs/.complete"
}

# The server's pid, if the pid file names a live server of this directory (not a recycled pid).
running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  ps -ww -p "$pid" -o args= 2>/dev/null | grep -qF "$marker" || return 1
  printf '%s\n' "$pid"
}

# "pid args" of whatever listens on 127.0.0.1:$1 (to recognise another checkout's server).
listener() {
  command -v ss >/dev/null || return 1
  local pid args
  pid="$(ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)"
  [[ -n "$pid" ]] || return 1
  args="$(ps -ww -p "$pid" -o args= 2>/dev/null)" || return 1
  printf '%s %s\n' "$pid" "$args"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# The commands. The sourcing script also sets: address (what `up` prints), what ("broker"),
# port_variable (KAFKA_PORT), instance_pattern (a regex of the server's command line whose
# group 1 is its directory); and defines ready_at DIR, instance_log DIR, log_tail [LOG],
# on_ready (checks before reusing our running instance), start (launches one and writes
# $pidfile), extra_command ARGS (anything but up/down/status).

# An instance that another checkout started and that holds our port (CI tests a fresh clone
# while the server of another checkout may still run). Prints "pid directory".
other_instance() {
  local found pid args
  found="$(listener "$port")" || return 1
  pid="${found%% *}"
  args="${found#* }"
  [[ "$args" =~ $instance_pattern ]] || return 1
  [[ "${BASH_REMATCH[1]}" != "$dir" ]] || return 1
  printf '%s %s\n' "$pid" "${BASH_REMATCH[1]}"
}

ready() {
  running_pid >/dev/null && ready_at "$dir"
}

# Waits for pid $1 of directory $2: 0 when ready, 1 when it exited, 2 on timeout.
wait_ready() {
  local deadline=$((SECONDS + start_timeout))
  until ready_at "$2"; do
    kill -0 "$1" 2>/dev/null || return 1
    ((SECONDS < deadline)) || return 2
    sleep 0.5
  done
}

# shellcheck source=deploy/local/process.sh
source "$here/process.sh"

stop() {
  local pid
  if pid="$(running_pid)"; then
    say "stopping the $what (pid $pid)"
    stop_pid "$pid"
  fi
  rm -f "$pidfile"
}

up() {
  lock_dir
  if ready; then
    on_ready
    say "already running (pid $(running_pid))"
    printf '%s\n' "$address"
    return 0
  fi
  local pid other_pid other_dir
  if ! pid="$(running_pid)"; then
    if read -r other_pid other_dir < <(other_instance); then
      if [[ -d "$other_dir" ]]; then
        wait_ready "$other_pid" "$other_dir" || {
          log_tail "$(instance_log "$other_dir")"
          die "the $what of $other_dir holds port $port but is not ready"
        }
        say "reusing the $what started from $other_dir (pid $other_pid)"
        printf '%s\n' "$address"
        return 0
      fi
      # Its data directory was deleted under it (a removed checkout): it cannot work any more.
      say "stopping $what pid $other_pid, whose directory $other_dir is gone"
      stop_pid "$other_pid"
    fi
    port_open "$port" && die "port $port is taken by another process (set $port_variable)"
    check_java
    fetch_jars
    start
    pid="$(<"$pidfile")"
  fi
  local waited=0
  wait_ready "$pid" "$dir" || waited=$?
  if ((waited == 1)); then
    rm -f "$pidfile"
    log_tail
    die "the $what exited during startup"
  elif ((waited == 2)); then
    log_tail
    stop
    die "the $what did not become ready within ${start_timeout}s"
  fi
  say "ready at $address (pid $pid)"
  printf '%s\n' "$address"
}

down() {
  lock_dir
  stop
  local other_pid other_dir
  if read -r other_pid other_dir < <(other_instance); then
    say "left running: the $what on port $port (pid $other_pid) belongs to $other_dir"
  else
    say "stopped"
  fi
}

status() {
  local other_pid other_dir
  if ready; then
    say "running (pid $(running_pid)) at $address"
    printf '%s\n' "$address"
  elif read -r other_pid other_dir < <(other_instance) && ready_at "$other_dir"; then
    say "running (pid $other_pid, started from $other_dir) at $address"
    printf '%s\n' "$address"
  else
    say "not running"
    exit 1
  fi
}

main() {
  case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) extra_command "$@" ;;
  esac
}
