# Shared helpers for the local-stack scripts: paths and progress output.
# shellcheck shell=bash
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK_DIR="$REPO/.stack"
mkdir -p "$STACK_DIR"

# say COMPONENT MESSAGE...: one progress line a user can follow on a slow first run.
say() { local who=$1; shift; printf '%s: %s\n' "$who" "$*"; }

# wait_for SECONDS COMMAND...: retry COMMAND once a second until it succeeds or time runs out.
wait_for() {
  local seconds=$1; shift
  local i
  for ((i = 0; i < seconds; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

# apt_install PACKAGE...: install Debian packages, refreshing the index only when needed.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "$@" >/dev/null
  fi
}
