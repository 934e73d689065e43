#!/bin/sh
# First start: create the cluster, the application's role and database (owner), and
# pgvector in it (CREATE EXTENSION needs a superuser; eino's own
# `CREATE EXTENSION IF NOT EXISTS vector` then finds it). Later starts reuse the volume.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user=${POSTGRES_USER:-eino}
db=${POSTGRES_DB:-eino}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username=postgres --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    {
        echo "listen_addresses = '*'"
        echo "max_connections = ${POSTGRES_MAX_CONNECTIONS:-200}"
        echo "shared_buffers = ${POSTGRES_SHARED_BUFFERS:-256MB}"
    } >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 -q --username=postgres -d postgres \
        -v user="$user" -v db="$db" -v pass="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pass';
CREATE DATABASE :"db" OWNER :"user";
\connect :"db"
CREATE EXTENSION IF NOT EXISTS vector;
SQL
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA"
