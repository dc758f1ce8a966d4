#!/usr/bin/env bash
# coderunner's DinD daemon: TLS material under /certs, dockerd on tcp://0.0.0.0:2376 (mutual
# TLS) and on its local socket, then the runtime images from /runtime-images/*.tar; healthy
# (healthcheck.sh) once /run/dind/ready exists. Arguments are passed on to dockerd.
#
# /certs, created on the first start and kept (mount a volume there):
#   ca/{cert.pem,key.pem}              the CA; its key never leaves this directory (root, 0700)
#   server/{ca.pem,cert.pem,key.pem}   dockerd's; the server certificate is made anew on every
#                                      start, for the SANs of this start (addresses change)
#   client/{ca.pem,cert.pem,key.pem}   a worker's DOCKER_CERT_PATH: owned by DIND_CLIENT_UID,
#                                      key mode 0600
#
# Environment: DIND_TLS_SAN (comma-separated DNS names and IPs, besides the container's host
# name and addresses; default dind,localhost,127.0.0.1), DIND_CLIENT_UID (10001), and
# DIND_CLIENT_GID (the same), DIND_START_TIMEOUT (seconds dockerd may take to answer; 60).
set -euo pipefail

CERTS=/certs
IMAGES_DIR=/runtime-images
READY=/run/dind/ready
SOCKET=unix:///var/run/docker.sock
SAN_LIST=${DIND_TLS_SAN:-dind,localhost,127.0.0.1}
CLIENT_UID=${DIND_CLIENT_UID:-10001}
CLIENT_GID=${DIND_CLIENT_GID:-$CLIENT_UID}
START_TIMEOUT=${DIND_START_TIMEOUT:-60}
DAYS_CA=3650
DAYS_LEAF=825

dockerd_pid=""
loader_pid=""
stopping=""  # set on SIGTERM/SIGINT
failed=""    # set when dockerd is stopped because of an error of ours

log() { printf '%s dind: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { log "error: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# --- TLS ----------------------------------------------------------------------------------------

# new_key FILE: an EC P-256 key (fast to make; Go's and OpenSSL's TLS both take it), mode 0600.
new_key() {
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) \
    || die "openssl could not generate a key in $1"
}

# sign CSR_SUBJECT KEY OUT EXTFILE: a certificate for KEY signed by the CA.
sign() {
  local subject=$1 key=$2 out=$3 ext=$4
  openssl req -new -key "$key" -subj "$subject" \
    | openssl x509 -req -CA "$CERTS/ca/cert.pem" -CAkey "$CERTS/ca/key.pem" -CAcreateserial \
        -days "$DAYS_LEAF" -sha256 -extfile "$ext" -out "$out" 2>/dev/null \
    || die "openssl could not sign $out"
}

make_ca() {
  log "no $CERTS/ca/cert.pem: creating a CA and a client certificate"
  install -d -m 0700 "$CERTS/ca"
  new_key "$CERTS/ca/key.pem"
  openssl req -new -x509 -key "$CERTS/ca/key.pem" -subj "/CN=coderunner dind CA" \
    -days "$DAYS_CA" -sha256 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$CERTS/ca/cert.pem.new" 2>/dev/null \
    || die "openssl could not create the CA in $CERTS/ca"
  rm -rf "$CERTS/client"  # signed by an earlier CA, if any
  mv "$CERTS/ca/cert.pem.new" "$CERTS/ca/cert.pem"
}

# san_entries: DIND_TLS_SAN, the host name and every address of this container, as
# subjectAltName entries (DNS:... or IP:...), without duplicates.
san_entries() {
  local entry
  {
    tr ',' '\n' <<<"$SAN_LIST"
    hostname
    hostname -I 2>/dev/null | tr ' ' '\n'
  } | while read -r entry; do
    entry=${entry//[[:space:]]/}
    [ -n "$entry" ] || continue
    if [[ $entry =~ ^[0-9.]+$ || $entry == *:* ]]; then echo "IP:$entry"; else echo "DNS:$entry"; fi
  done | awk '!seen[$0]++' | paste -sd, -
}

make_client() {
  local dir=$CERTS/client ext
  [ -f "$dir/cert.pem" ] && [ -f "$dir/key.pem" ] && return 0
  log "creating the client certificate in $dir"
  install -d -m 0755 "$dir"
  ext=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$ext"
  new_key "$dir/key.pem.new"
  sign "/CN=coderunner worker" "$dir/key.pem.new" "$dir/cert.pem.new" "$ext"
  rm -f "$ext"
  mv "$dir/key.pem.new" "$dir/key.pem"
  mv "$dir/cert.pem.new" "$dir/cert.pem"
}

make_server() {
  local dir=$CERTS/server ext sans
  sans=$(san_entries)
  install -d -m 0700 "$dir"
  ext=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$ext"
  printf 'extendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$sans" >>"$ext"
  new_key "$dir/key.pem.new"
  sign "/CN=coderunner dind" "$dir/key.pem.new" "$dir/cert.pem.new" "$ext"
  rm -f "$ext"
  mv "$dir/key.pem.new" "$dir/key.pem"
  mv "$dir/cert.pem.new" "$dir/cert.pem"
  install -m 0644 "$CERTS/ca/cert.pem" "$dir/ca.pem"
  log "server certificate for $sans"
}

# The worker reads the client directory under its own uid; nobody else may read the key.
hand_over_client() {
  local dir=$CERTS/client
  install -m 0644 "$CERTS/ca/cert.pem" "$dir/ca.pem"
  chown "$CLIENT_UID:$CLIENT_GID" "$dir" "$dir/ca.pem" "$dir/cert.pem" "$dir/key.pem" \
    || die "could not hand $dir over to uid $CLIENT_UID (DIND_CLIENT_UID)"
  chmod 0755 "$dir"
  chmod 0644 "$dir/ca.pem" "$dir/cert.pem"
  chmod 0600 "$dir/key.pem"
  log "client certificate in $dir for uid $CLIENT_UID (DOCKER_CERT_PATH=$dir)"
}

setup_tls() {
  [ -d "$CERTS" ] && [ -w "$CERTS" ] || die "$CERTS is not a writable directory (mount a volume there)"
  [ -f "$CERTS/ca/cert.pem" ] && [ -f "$CERTS/ca/key.pem" ] || make_ca
  make_client
  make_server
  hand_over_client
}

# --- cgroups ------------------------------------------------------------------------------------

# Nest the sandbox containers in this container's own cgroup, so its limits cover them too.
# cgroup v1 with the host's /sys/fs/cgroup mounted: dockerd would otherwise make /docker/<id>
# at the host's top level, beside this container. cgroup v2 with a cgroup namespace: move our
# processes out of the root (no internal processes), as the upstream docker:dind does.
cgroup_args() {
  local own
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    if [ "$(cat /proc/self/cgroup)" = "0::/" ]; then
      mkdir -p /sys/fs/cgroup/init
      xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
      sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
        >/sys/fs/cgroup/cgroup.subtree_control
    fi
    return 0
  fi
  own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
  if [ -n "$own" ] && [ "$own" != / ] && [ -d "/sys/fs/cgroup/memory$own" ]; then
    echo "--cgroup-parent=$own/dind"
  fi
}

# --- dockerd ------------------------------------------------------------------------------------

start_dockerd() {
  local args=()
  read -ra args <<<"$(cgroup_args)"
  # A restarted container keeps its files: stale pid files would stop dockerd and containerd.
  find /run /var/run -iname 'docker*.pid' -delete 2>/dev/null || :
  rm -f /var/run/docker/containerd/containerd.pid "$READY"
  log "starting dockerd on tcp://0.0.0.0:2376 (mutual TLS) and $SOCKET ${args[*]} $*"
  dockerd \
    --host="$SOCKET" --host=tcp://0.0.0.0:2376 \
    --tlsverify --tlscacert="$CERTS/server/ca.pem" \
    --tlscert="$CERTS/server/cert.pem" --tlskey="$CERTS/server/key.pem" \
    "${args[@]}" "$@" &
  dockerd_pid=$!
}

wait_until_answering() {
  local t0 deadline
  t0=$(now)
  deadline=$(($(date +%s) + START_TIMEOUT))
  until docker -H "$SOCKET" version --format '{{.Server.Version}}' >/dev/null 2>&1; do
    kill -0 "$dockerd_pid" 2>/dev/null || return 1
    [ -z "$stopping" ] || return 1
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "error: dockerd did not answer on $SOCKET within ${START_TIMEOUT} s (DIND_START_TIMEOUT); stopping it" >&2
      failed=1
      kill -TERM "$dockerd_pid" 2>/dev/null || :
      return 1
    fi
    sleep 0.2
  done
  log "dockerd $(docker -H "$SOCKET" version --format '{{.Server.Version}}') answers after $(since "$t0")"
}

# --- runtime images -----------------------------------------------------------------------------

load_runtime_images() {
  local tars=() tar t0 loaded all
  all=$(now)
  [ -d "$IMAGES_DIR" ] && tars=("$IMAGES_DIR"/*.tar)
  if [ ${#tars[@]} -eq 0 ] || [ ! -e "${tars[0]}" ]; then
    log "warning: no $IMAGES_DIR/*.tar: no runtime images loaded (scripts/export-runtime-images.sh makes them)"
    return 0
  fi
  for tar in "${tars[@]}"; do
    t0=$(now)
    if ! loaded=$(docker -H "$SOCKET" load --quiet --input "$tar" 2>&1); then
      log "error: docker load of $tar failed: $loaded" >&2
      return 1
    fi
    log "loaded $(basename "$tar") ($(du -h "$tar" | cut -f1)) in $(since "$t0"): $(paste -sd' ' <<<"$loaded")"
  done
  log "${#tars[@]} runtime image file(s) loaded in $(since "$all")"
}

load_then_ready() {
  load_runtime_images || exit 1
  mkdir -p "$(dirname "$READY")"
  touch "$READY"
  log "ready"
}

# --- supervision --------------------------------------------------------------------------------

on_signal() {
  stopping=1
  if [ -z "$dockerd_pid" ]; then
    log "$1 before dockerd started: exiting"
    exit 143
  fi
  log "$1: stopping dockerd"
  [ -z "$loader_pid" ] || kill -TERM "$loader_pid" 2>/dev/null || :
  kill -TERM "$dockerd_pid" 2>/dev/null || :
}

# Until dockerd exits: a signal is passed on to it; a failed image load stops it. Our status is
# dockerd's, or 1 when the images could not be loaded.
supervise() {
  local pid status
  while true; do
    status=0
    # -p leaves pid unset when a signal interrupted the wait (on_signal has run by then).
    wait -n -p pid "$dockerd_pid" ${loader_pid:+"$loader_pid"} || status=$?
    pid=${pid:-}
    if [ "$pid" = "$dockerd_pid" ]; then
      [ -z "$loader_pid" ] || kill -TERM "$loader_pid" 2>/dev/null || :
      [ -n "$stopping" ] || [ -n "$failed" ] || log "error: dockerd exited with status $status (its log is above)" >&2
      [ -z "$failed" ] || status=1
      log "exiting with status $status"
      exit "$status"
    elif [ -n "$pid" ] && [ "$pid" = "$loader_pid" ]; then
      loader_pid=""
      if [ "$status" -ne 0 ] && [ -z "$stopping" ]; then
        failed=1
        log "error: the runtime images could not be loaded; stopping dockerd" >&2
        kill -TERM "$dockerd_pid" 2>/dev/null || :
      fi
    fi  # else interrupted by a signal: on_signal ran, keep waiting for dockerd
  done
}

main() {
  trap 'on_signal SIGTERM' TERM
  trap 'on_signal SIGINT' INT
  setup_tls
  start_dockerd "$@"
  if wait_until_answering; then
    load_then_ready &
    loader_pid=$!
  fi
  supervise
}

main "$@"
