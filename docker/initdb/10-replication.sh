#!/bin/bash
# Runs once in the primary's container when its data directory is created (the postgres image
# runs /docker-entrypoint-initdb.d/*.sh): a role for the standby's replication connection.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
