#!/usr/bin/env bash
# The DinD daemon's health: dockerd answers on its local socket and the runtime images are loaded
# (the entrypoint creates /run/dind/ready after the last one).
set -euo pipefail
if [ ! -e /run/dind/ready ]; then
  echo "not ready: /run/dind/ready is missing (dockerd starting or runtime images loading)" >&2
  exit 1
fi
if ! version=$(docker -H unix:///var/run/docker.sock version --format '{{.Server.Version}}' 2>&1); then
  echo "dockerd does not answer on /var/run/docker.sock: $version" >&2
  exit 1
fi
echo "dockerd $version ready"
