# Shared by the deploy/local server scripts (sourced, never run). The sourcing script sets:
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
