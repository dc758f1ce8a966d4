#!/usr/bin/env bash
# coderunner/postgres:local — start PostgreSQL like the official image's docker-entrypoint.sh
# (the subset docker-compose.yml and the Makefile use; see images/local/README.md):
#
#   POSTGRES_PASSWORD          the superuser's password; required (unless
#                              POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER              the superuser, default postgres
#   POSTGRES_DB                a database created on first start, default $POSTGRES_USER
#   PGDATA                     data directory, default /var/lib/postgresql/data (the volume)
#   POSTGRES_INITDB_ARGS       more initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  for connections over the network, default scram-sha-256
#   /docker-entrypoint-initdb.d/*.sql, *.sql.gz, *.sh   run once, after the first initdb
#
# An empty data directory is initialised (initdb, the database, the init scripts), then
# `postgres` runs in the foreground as the postgres user (exec: it gets the stop signal).
# Local (unix socket) connections are trusted, as in the official image, so
# `docker exec CONTAINER psql -U USER DB` needs no password; over the network the password is
# required. Arguments starting with '-' are passed to postgres; any other command runs as is.
set -Eeuo pipefail

say() { printf '[postgres-entrypoint] %s\n' "$*"; }
die() { printf '[postgres-entrypoint] error: %s\n' "$*" >&2; exit 1; }

export PGDATA=${PGDATA:-/var/lib/postgresql/data}

if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
fi
if [[ ${1:-} != postgres ]]; then
    exec "$@"
fi

# As root: make the data and socket directories the postgres user's, then drop to it.
if [[ $(id -u) == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups --inh-caps=-all \
        env HOME=/var/lib/postgresql "$BASH_SOURCE" "$@"
fi

# From here on: the postgres user (or whatever --user the container was given).
[[ -d $PGDATA && -w $PGDATA ]] || die "$PGDATA is not a directory writable by uid $(id -u)"

POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z ${POSTGRES_PASSWORD:-} && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
        die "the database is uninitialized and POSTGRES_PASSWORD is not set.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser '$POSTGRES_USER'
       (for example \`docker run -e POSTGRES_PASSWORD=secret ...\`), or, only where nothing
       untrusted can connect, POSTGRES_HOST_AUTH_METHOD=trust to allow every connection
       without a password."
    fi
    if [[ -n $(ls -A "$PGDATA" 2>/dev/null) ]]; then
        die "$PGDATA is not empty but holds no database (no PG_VERSION): refusing to initialise it"
    fi
    chmod 0700 "$PGDATA"

    say "initialising a new database cluster in $PGDATA (superuser $POSTGRES_USER) ..."
    # The password through a pipe, never in a file or on a command line.
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" \
        --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
        --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=trust \
        ${POSTGRES_INITDB_ARGS:-} >/dev/null

    # initdb's pg_hba.conf: local socket and loopback trusted (as the official image).
    # Connections from anywhere else need the password.
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

    # A temporary server to create the database and run the init scripts: no TCP, and its
    # socket in a private directory, so that nothing (pg_isready included) takes it for the
    # real server, which starts after it.
    init_sock=$(mktemp -d "${TMPDIR:-/tmp}/pg-init.XXXXXX")
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories='$init_sock' -p 5432" \
        -w -t 60 start >/dev/null
    export PGHOST=$init_sock PGPORT=5432
    psql_init=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --no-password)
    if [[ $POSTGRES_DB != postgres ]]; then
        exists=$("${psql_init[@]}" --dbname postgres -tA --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
        if [[ -z $exists ]]; then
            "${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
            say "created database $POSTGRES_DB"
        fi
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        [[ -e $f ]] || continue
        case $f in
        *.sh)
            say "running $f"
            if [[ -x $f ]]; then "$f"; else . "$f"; fi
            ;;
        *.sql) say "running $f"; "${psql_init[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
        *.sql.gz) say "running $f"; gzip -dc "$f" | "${psql_init[@]}" --dbname "$POSTGRES_DB" ;;
        *) say "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    unset PGHOST PGPORT
    rmdir "$init_sock"
    say "initialisation complete; starting the server"
else
    say "database cluster in $PGDATA exists (PostgreSQL $(<"$PGDATA/PG_VERSION")): skipping initialisation"
fi

exec "$@"
