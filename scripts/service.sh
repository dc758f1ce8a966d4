#!/usr/bin/env bash
# The service (`coderunner serve`) in the background, for `make up/down/restart/logs/status`
# on the local stack. Usage: scripts/service.sh start|stop|restart|status|logs
# State: .stack/service/{coderunner.pid,coderunner.log} (SERVICE_DIR overrides). Settings come from the environment and
# .env, exactly as for `make run`.
set -euo pipefail
# shellcheck source=stack/lib.sh
source "$(dirname "$0")/stack/lib.sh"

dir="${SERVICE_DIR:-$STACK_DIR/service}"
pid_file="$dir/coderunner.pid"
log_file="$dir/coderunner.log"
coderunner="$REPO/.venv/bin/coderunner"
start_timeout=${SERVICE_START_TIMEOUT:-120}
# On SIGTERM the worker finishes the executions it is running (at most the wall-time limit).
stop_timeout=${SERVICE_STOP_TIMEOUT:-60}
mkdir -p "$dir"

running_pid() {
  local pid
  pid=$(cat "$pid_file" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  local pid
  if pid=$(running_pid); then
    say service "already running (pid $pid); logs in $log_file"
    return 0
  fi
  echo "--- $(date -u +%FT%TZ) start" >>"$log_file"
  cd "$REPO"
  # setsid: its own session, so a terminal's Ctrl-C or a closed pipe never reaches it.
  setsid "$coderunner" serve >>"$log_file" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pid_file"
  say service "started (pid $pid); waiting up to ${start_timeout} s for /ready; logs in $log_file"
  local i
  for ((i = 0; i < start_timeout; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      say service "exited while starting; the end of its log:"
      tail -n 30 "$log_file" >&2
      rm -f "$pid_file"
      return 1
    fi
    if "$coderunner" health --timeout 5 >/dev/null 2>&1; then
      say service "ready"
      "$coderunner" health
      return 0
    fi
    sleep 1
  done
  say service "not ready after ${start_timeout} s (still running as pid $pid):"
  "$coderunner" health || true
  return 1
}

stop() {
  local pid i
  if ! pid=$(running_pid); then
    say service "not running"
    rm -f "$pid_file"
    return 0
  fi
  say service "stopping pid $pid (running executions finish first; at most ${stop_timeout} s)"
  kill -TERM "$pid"
  for ((i = 0; i < stop_timeout; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say service "still running after ${stop_timeout} s: killing it (its submissions run again)"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
  rm -f "$pid_file"
  say service "stopped"
}

status() {
  local pid
  if pid=$(running_pid); then
    say service "running (pid $pid); logs in $log_file"
    "$coderunner" health
  else
    say service "not running"
    return 3
  fi
}

logs() {
  [[ -f "$log_file" ]] || { say service "no log yet ($log_file)"; return 0; }
  if [[ "${FOLLOW:-1}" == 1 ]]; then
    tail -n "${LINES:-100}" -F "$log_file"
  else
    tail -n "${LINES:-100}" "$log_file"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) status ;;
  logs) logs ;;
  *) echo "usage: $0 start|stop|restart|status|logs" >&2; exit 2 ;;
esac
