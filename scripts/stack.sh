#!/usr/bin/env bash
# The local stack: Docker engine, PostgreSQL, Kafka (KRaft) and the sandbox runtime images.
# Usage: scripts/stack.sh up|down|status   — idempotent; state lives in .stack/ (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

components_up=(docker postgres kafka images compose)
components_down=(kafka postgres docker)

case "${1:-}" in
  up)
    start=$(date +%s)
    for c in "${components_up[@]}"; do bash "$here/stack/$c.sh" up; done
    echo "stack: up in $(( $(date +%s) - start )) s"
    ;;
  down)
    for c in "${components_down[@]}"; do bash "$here/stack/$c.sh" down; done
    ;;
  status)
    rc=0
    for c in "${components_up[@]}"; do bash "$here/stack/$c.sh" status || rc=3; done
    exit $rc
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
