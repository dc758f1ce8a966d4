#!/usr/bin/env bash
# Docker Compose v2 (the `docker compose` CLI plugin), for docker-compose.yml and its test.
# Debian ships only the old Python docker-compose 1.x, and no registry with the plugin's binary is
# reachable here, so it is built from source through the Go module proxy (about 2 minutes once).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COMPOSE_VERSION=v2.40.3
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PLUGIN=$PLUGIN_DIR/docker-compose

present() { docker compose version >/dev/null 2>&1; }

up() {
  if present; then
    say compose "$(docker compose version)"
    return 0
  fi
  command -v go >/dev/null || {
    say compose "needs Go (1.23+) to build the plugin; install it (https://go.dev/dl/) and re-run"
    exit 1
  }
  local started work log
  started=$(date +%s)
  work="$STACK_DIR/compose-build"
  log="$work/build.log"
  rm -rf "$work"
  mkdir -p "$work"
  say compose "building the docker compose plugin $COMPOSE_VERSION from the Go module proxy (log: $log)"
  # `go install module@version` refuses a module whose go.mod has replace/exclude directives,
  # so the module is fetched and built as the main module in a copy of its source.
  if ! (
    set -e
    dir=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    cp -r "$dir" "$work/src"
    chmod -R u+w "$work/src"
    cd "$work/src"
    go build -trimpath -o "$work/docker-compose" \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" ./cmd
  ) >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say compose "build failed"
    exit 1
  fi
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$work/docker-compose" "$PLUGIN"
  rm -rf "$work/src"
  say compose "installed $PLUGIN in $(( $(date +%s) - started )) s: $(docker compose version)"
}

case "${1:-}" in
  up) up ;;
  down) ;;  # nothing runs
  status) if present; then say compose "$(docker compose version)"; else say compose "not installed (make stack-up builds it)"; exit 3; fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
