#!/usr/bin/env bash
# PostgreSQL from Debian's packages on 127.0.0.1:5432 with a `coderunner` role and database.
# Plain and TLS connections both work: the server certificate (SAN localhost + 127.0.0.1) is signed
# by the stack's own CA in .stack/postgres/tls/ca.pem (sslmode=require, or verify-full with
# POSTGRES_SSLROOTCERT pointing at it, as against Azure Database for PostgreSQL).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_USER=coderunner
PG_DB=coderunner
# The local stack's password; production passes its own through POSTGRES_PASSWORD / the DSN.
PG_PASSWORD=coderunner

PG_CONF_DIR=/etc/postgresql/$PG_VERSION/$PG_CLUSTER
TLS_DIR=$STACK_DIR/postgres/tls
# The server reads its own copy of the certificate and key from the cluster's directory: the key
# must belong to postgres, and the repository may sit where postgres cannot look (under /root).
PG_TLS_DIR=$PG_CONF_DIR/tls
PG_TLS_CONF=$PG_CONF_DIR/conf.d/coderunner-tls.conf

ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }

psql_admin() { runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }

rel() { printf '%s' "${1#"$REPO"/}"; }

install() {
  if ! command -v pg_ctlcluster >/dev/null || [ ! -d "/usr/lib/postgresql/$PG_VERSION" ]; then
    say postgres "installing postgresql-$PG_VERSION from Debian's packages"
    apt_install "postgresql-$PG_VERSION" postgresql-client-common
  fi
  command -v openssl >/dev/null || apt_install openssl
  if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$PG_VERSION/$PG_CLUSTER"; then
    say postgres "creating cluster $PG_VERSION/$PG_CLUSTER"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
  fi
}

# ensure_certificates: the stack's CA and the server certificate, generated once. The CA key is
# not kept: the CA signs this one certificate, and a fresh .stack makes a fresh pair.
ensure_certificates() {
  if [ -s "$TLS_DIR/ca.pem" ] && [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/server.key" ]; then
    return 0
  fi
  say postgres "generating a CA and a server certificate (localhost, 127.0.0.1) in $(rel "$TLS_DIR")"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  local log="$STACK_DIR/postgres/tls.log"
  if ! (
    umask 077
    cd "$TLS_DIR"
    printf '%s\n' 'basicConstraints = critical, CA:TRUE, pathlen:0' \
      'keyUsage = critical, keyCertSign, cRLSign' \
      'subjectKeyIdentifier = hash' >ca.ext
    printf '%s\n' 'basicConstraints = critical, CA:FALSE' \
      'keyUsage = critical, digitalSignature, keyEncipherment' \
      'extendedKeyUsage = serverAuth' \
      'subjectAltName = DNS:localhost, IP:127.0.0.1' \
      'subjectKeyIdentifier = hash' \
      'authorityKeyIdentifier = keyid, issuer' >server.ext
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout ca.key -out ca.csr \
      -subj '/O=coderunner local stack/CN=coderunner local PostgreSQL CA'
    openssl x509 -req -in ca.csr -key ca.key -days 3650 -sha256 -extfile ca.ext -out ca.pem \
      -set_serial "0x$(openssl rand -hex 16)"
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr \
      -subj '/O=coderunner local stack/CN=localhost'
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 3650 -sha256 \
      -extfile server.ext -out server.pem -set_serial "0x$(openssl rand -hex 16)"
    openssl verify -CAfile ca.pem -verify_hostname localhost server.pem
    rm -f ca.key ca.csr ca.ext server.csr server.ext
    chmod 644 ca.pem server.pem
  ) >"$log" 2>&1; then
    cat "$log" >&2
    rm -rf "$TLS_DIR"
    say postgres "certificate generation failed"
    exit 1
  fi
}

# install_as_postgres SOURCE DEST MODE: copy SOURCE to DEST, owned by postgres, unless identical.
# Sets TLS_CHANGED=1 when it copied.
install_as_postgres() {
  if ! cmp -s "$1" "$2"; then
    command install -o postgres -g postgres -m "$3" "$1" "$2"  # the program, not install() above
    TLS_CHANGED=1
  fi
}

# configure_tls: the server's copy of the certificate and key, and a conf.d file pointing at it
# (read after postgresql.conf, so it wins over Debian's snakeoil certificate). Leaves
# TLS_CHANGED=1 when a running server has to reload.
configure_tls() {
  TLS_CHANGED=0
  command install -d -o postgres -g postgres -m 700 "$PG_TLS_DIR"
  install_as_postgres "$TLS_DIR/server.pem" "$PG_TLS_DIR/server.pem" 644
  install_as_postgres "$TLS_DIR/server.key" "$PG_TLS_DIR/server.key" 600
  local conf
  conf="# Written by scripts/stack/postgres.sh: TLS with the local stack's certificate.
ssl = on
ssl_cert_file = '$PG_TLS_DIR/server.pem'
ssl_key_file = '$PG_TLS_DIR/server.key'"
  if ! printf '%s\n' "$conf" | cmp -s - "$PG_TLS_CONF"; then
    printf '%s\n' "$conf" >"$PG_TLS_CONF"
    chown postgres:postgres "$PG_TLS_CONF"
    TLS_CHANGED=1
  fi
}

# tls_verified: an encrypted session verified against the stack's CA (sslmode=verify-full).
tls_verified() {
  local conninfo="host=localhost hostaddr=127.0.0.1 port=$PG_PORT dbname=$PG_DB user=$PG_USER"
  conninfo+=" sslmode=verify-full sslrootcert=$TLS_DIR/ca.pem"
  [ "$(PGPASSWORD=$PG_PASSWORD psql -X -v ON_ERROR_STOP=1 -qtA "$conninfo" \
    -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')" = t ]
}

provision() {
  if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
    say postgres "creating role $PG_USER"
    psql_admin -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB"
  fi
  if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    say postgres "creating database $PG_DB"
    psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
  fi
}

up() {
  install
  ensure_certificates
  configure_tls
  if ready; then
    say postgres "already running on 127.0.0.1:$PG_PORT"
    if [ "$TLS_CHANGED" = 1 ]; then
      say postgres "TLS configuration changed: reloading"
      pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" reload
    fi
  else
    say postgres "starting cluster $PG_VERSION/$PG_CLUSTER"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
    if ! wait_for 60 ready; then
      say postgres "did not become ready in 60 s; last log lines:"
      tail -n 20 "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log" >&2 || true
      exit 1
    fi
  fi
  provision
  # a reload takes effect asynchronously: give the server a moment to load the certificate
  if ! wait_for 15 tls_verified; then
    say postgres "TLS with the certificate from $(rel "$TLS_DIR") does not work; last log lines:"
    tail -n 20 "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log" >&2 || true
    exit 1
  fi
  say postgres "ready: postgresql://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB (plain or TLS)"
  say postgres "TLS CA certificate: $(rel "$TLS_DIR/ca.pem") (POSTGRES_SSLROOTCERT for verify-full)"
}

down() {
  if ready; then
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast
    say postgres "stopped"
  else
    say postgres "not running"
  fi
}

status() {
  if ready; then
    say postgres "running on 127.0.0.1:$PG_PORT (database $PG_DB; TLS CA $(rel "$TLS_DIR/ca.pem"))"
  else
    say postgres "stopped"
    return 3
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
