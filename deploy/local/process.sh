# Sourced by the deploy/local scripts (never run): stopping a process cleanly. The sourcing
# script defines `say`.
# shellcheck shell=bash

# SIGTERM, then SIGKILL after 60 s; returns once pid $1 is gone.
stop_pid() {
  local pid="$1" deadline=$((SECONDS + 60))
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "no clean shutdown within 60s; killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
}
