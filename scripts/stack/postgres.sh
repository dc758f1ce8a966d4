#!/usr/bin/env bash
# PostgreSQL from Debian's packages on 127.0.0.1:5432 with a `coderunner` role and database.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_USER=coderunner
PG_DB=coderunner
# The local stack's password; production passes its own through POSTGRES_PASSWORD / the DSN.
PG_PASSWORD=coderunner

ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }

psql_admin() { runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }

install() {
  if ! command -v pg_ctlcluster >/dev/null || [ ! -d "/usr/lib/postgresql/$PG_VERSION" ]; then
    say postgres "installing postgresql-$PG_VERSION from Debian's packages"
    apt_install "postgresql-$PG_VERSION" postgresql-client-common
  fi
  if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$PG_VERSION/$PG_CLUSTER"; then
    say postgres "creating cluster $PG_VERSION/$PG_CLUSTER"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
  fi
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
  if ready; then
    say postgres "already running on 127.0.0.1:$PG_PORT"
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
  say postgres "ready: postgresql://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB"
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
    say postgres "running on 127.0.0.1:$PG_PORT (database $PG_DB)"
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
