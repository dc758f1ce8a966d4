#!/usr/bin/env bash
# Docker engine for the sandbox: Debian's docker.io (20.10), started with setsid in the background.
#
#   up      install docker.io if dockerd is missing, start dockerd unless a daemon already answers
#           (then reuse it, never start a second one), wait until `docker info` answers
#   down    stop the dockerd that `up` started (its pid file); a daemon started elsewhere stays
#   status  one line; exit 0 when a daemon answers, 3 when not
#
# With DOCKER_HOST set nothing is installed or started locally: up/status only check that the
# daemon it names answers, down does nothing.
# State: .stack/docker/dockerd.pid, .stack/docker/dockerd.log, .stack/docker/apt.log
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap 'rc=$?; say docker "failed (exit $rc) at line $LINENO: $BASH_COMMAND" >&2; exit $rc' ERR
set -E

DOCKER_STATE="$STACK_DIR/docker"
PID_FILE="$DOCKER_STATE/dockerd.pid"
LOG_FILE="$DOCKER_STATE/dockerd.log"
START_TIMEOUT=60
STOP_TIMEOUT=60

answers() { docker info >/dev/null 2>&1; }

server_version() { docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'; }

# our_pid: print the pid from our pid file when that process is still a running dockerd.
our_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  echo "$pid"
}

# other_dockerd: a dockerd that is alive per its own pid file (/var/run/docker.pid) but not ours.
other_dockerd() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  echo "$pid"
}

install() {
  if command -v dockerd >/dev/null && command -v docker >/dev/null; then return 0; fi
  say docker "installing docker.io from Debian's packages (log: $DOCKER_STATE/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q docker.io; } >"$DOCKER_STATE/apt.log" 2>&1; then
    say docker "apt-get failed; last lines of $DOCKER_STATE/apt.log:"
    tail -n 20 "$DOCKER_STATE/apt.log" >&2
    exit 1
  fi
}

# wait_ready PID: wait until `docker info` answers; fail early when the dockerd PID exits.
wait_ready() {
  local pid=$1 i problem="did not answer \`docker info\` within ${START_TIMEOUT} s"
  for ((i = 0; i < START_TIMEOUT; i++)); do
    if answers; then return 0; fi
    if [ ! -d "/proc/$pid" ]; then problem="exited"; break; fi
    sleep 1
  done
  answers && return 0
  say docker "dockerd (pid $pid) $problem"
  if [ -f "$LOG_FILE" ]; then
    say docker "last lines of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2
  fi
  exit 1
}

up() {
  local pid
  mkdir -p "$DOCKER_STATE"
  if [ -n "${DOCKER_HOST:-}" ]; then
    say docker "DOCKER_HOST=$DOCKER_HOST is set: not starting anything locally, checking it answers"
    if ! wait_for 10 answers; then
      say docker "the daemon at $DOCKER_HOST does not answer \`docker info\`:"
      docker info 2>&1 >/dev/null | tail -n 5 >&2 || true
      exit 1
    fi
    say docker "ready: $DOCKER_HOST (server $(server_version))"
    return 0
  fi
  if answers; then
    if pid=$(our_pid); then
      say docker "already running (server $(server_version), dockerd pid $pid started by this script)"
    else
      say docker "already running (server $(server_version), started outside this script; reusing it)"
    fi
    return 0
  fi
  install
  if pid=$(our_pid) || pid=$(other_dockerd); then
    # A dockerd process exists but does not answer yet (still starting): wait for it.
    say docker "dockerd (pid $pid) is running but not answering yet; waiting up to ${START_TIMEOUT} s"
    wait_ready "$pid"
  else
    say docker "starting dockerd (log: $LOG_FILE)"
    # Without job control a background job is not a process-group leader, so setsid does not
    # fork: $! is dockerd's own pid.
    echo "--- $(date -u +%FT%TZ) started by scripts/stack/docker.sh" >>"$LOG_FILE"
    setsid dockerd </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    say docker "waiting for dockerd (pid $pid) to answer \`docker info\` (up to ${START_TIMEOUT} s)"
    wait_ready "$pid"
  fi
  say docker "ready (server $(server_version), dockerd pid $pid)"
}

down() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    say docker "DOCKER_HOST=$DOCKER_HOST is set: nothing local to stop"
    return 0
  fi
  local pid i
  if ! pid=$(our_pid); then
    rm -f "$PID_FILE"
    if answers; then
      say docker "running, but not started by this script; leaving it alone"
    else
      say docker "not running"
    fi
    return 0
  fi
  say docker "stopping dockerd (pid $pid, SIGTERM; up to ${STOP_TIMEOUT} s)"
  kill -TERM "$pid"
  for ((i = 0; i < STOP_TIMEOUT; i++)); do
    [ -d "/proc/$pid" ] || break
    sleep 1
  done
  if [ -d "/proc/$pid" ]; then
    say docker "dockerd (pid $pid) still running after ${STOP_TIMEOUT} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  say docker "stopped"
}

status() {
  local pid who
  if answers; then
    if [ -n "${DOCKER_HOST:-}" ]; then who="at $DOCKER_HOST"
    elif pid=$(our_pid); then who="dockerd pid $pid, started by this script"
    else who="started outside this script"
    fi
    say docker "running (server $(server_version), $who)"
  else
    say docker "stopped"
    exit 3
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
