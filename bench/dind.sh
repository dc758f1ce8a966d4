#!/usr/bin/env bash
# bench/execution.py with the production topology: the sandbox engine is a Docker-in-Docker
# daemon reached over mutual TLS (images/dind), the worker and the baseline on the host.
# Compare with `make bench` (the local engine) — run both in the same session; this machine is
# noisy. Usage: bench/dind.sh [bench.execution arguments]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
name="coderunner-bench-dind-$$"
work="$(mktemp -d)"
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

make --no-print-directory dind-image >/dev/null
bash scripts/export-runtime-images.sh "$work/images" python
mkdir -p "$work/certs"
docker run -d --name "$name" \
  --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
  --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
  --device-cgroup-rule 'a *:* rwm' -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  -v "$name:/var/lib/docker" -v "$work/images:/runtime-images:ro" -v "$work/certs:/certs" \
  -e DIND_CLIENT_UID="$(id -u)" coderunner/dind:local >/dev/null
for _ in $(seq 120); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] && break
  sleep 1
done
[ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] || {
  docker logs --tail 30 "$name" >&2
  echo "bench/dind.sh: the DinD daemon did not become healthy" >&2
  exit 1
}
ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")"
echo "sandbox engine: DinD at tcp://$ip:2376 (mutual TLS)"
# The baseline's docker.from_env() lets these replace the daemon's CA (docker/docker-py#2433).
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE \
  DOCKER_HOST="tcp://$ip:2376" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$work/certs/client" \
  .venv/bin/python -m bench.execution "$@"
