#!/bin/bash
# The standby's entry point: the first time, copy the primary (pg_basebackup -R writes
# standby.signal and primary_conninfo), named 'standby' in pg_stat_replication so pgmaitre's
# backend_application_name1 finds it; then the postgres image's own entry point.
set -euo pipefail
PGDATA=${PGDATA:-/var/lib/postgresql/data}
PRIMARY_HOST=${PRIMARY_HOST:-primary}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -c fast; do
    echo "standby: waiting for the primary at $PRIMARY_HOST..." >&2
    rm -rf "${PGDATA:?}"/*
    sleep 2
  done
  echo "primary_conninfo = 'host=$PRIMARY_HOST port=5432 user=replicator password=${PGPASSWORD:?set PGPASSWORD to the replicator password} application_name=standby'" >> "$PGDATA/postgresql.auto.conf"
  chmod 0700 "$PGDATA"
fi
exec docker-entrypoint.sh postgres
