#!/usr/bin/env bash
# pooling.sh — transaction pooling against PgBouncer in transaction mode, one run, side by side.
#
# Over the shared lab cluster and peers (../shared/bench/cluster.sh start; peers.sh start), starts
# pgmaitre on 127.0.0.1:$OURS_PORT with pool_mode = transaction and the same server pool size as
# the lab's PgBouncer (default_pool_size = 20, every statement on the primary: weights 1,0,0, as
# PgBouncer has one backend), then:
#   1. runs ../shared/bench/bench.sh for direct-primary, pgbouncer-tx and ours at $CLIENTS clients
#      (-S simple/extended/prepared and tpcb-like), with the file-descriptor limit raised so that
#      pgbench can open 1000 connections (direct-primary has max_connections = 300: it fails at
#      1000, which the table shows);
#   2. measures RSS per 1000 idle client connections for both poolers (bench/e2e/idle-clients.ts:
#      1000 logged-in connections that do nothing; RSS from /proc before and after).
# Usage: bench/pooling.sh            (npm run build first; ~25 min with the defaults)
#        CLIENTS="64 1000" DURATION=5 bench/pooling.sh   (a shorter run)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/bench}
OURS_PORT=${OURS_PORT:-9999}
CLIENTS=${CLIENTS:-"16 64 256 1000"}
DURATION=${DURATION:-10}
IDLE=${IDLE:-1000}
WEIGHTS=${WEIGHTS:-"1 0 0"}
OUT=${OUT:-/tmp/pgmaitre-pooling-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=65536
ulimit -n "$(( hard < 65536 ? hard : 65536 ))"
echo "file descriptors: $(ulimit -n)"

for p in 15432 16432; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "nothing listens on 127.0.0.1:$p: start $SHARED/cluster.sh and peers.sh first" >&2; exit 1; }
done
[ -f dist/src/main.js ] || { echo "run npm run build first" >&2; exit 1; }

read -r w0 w1 w2 <<<"$WEIGHTS"
conf="$OUT/pgmaitre.conf"
cat >"$conf" <<EOF
listen_addresses = '127.0.0.1'
port = $OURS_PORT
unix_socket_directories = ''
pcp_listen_addresses = ''
http_port = 0
pid_file_name = ''
backend_hostname0 = '127.0.0.1'
backend_port0 = 15432
backend_weight0 = $w0
backend_hostname1 = '127.0.0.1'
backend_port1 = 15433
backend_weight1 = $w1
backend_hostname2 = '127.0.0.1'
backend_port2 = 15434
backend_weight2 = $w2
sr_check_user = 'postgres'
health_check_user = 'postgres'
health_check_period = 10
enable_pool_hba = off
pool_mode = 'transaction'
default_pool_size = 20
max_client_conn = 2000
log_min_messages = warning
EOF
node bin/pgmaitre.js -n -f "$conf" >"$OUT/pgmaitre.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null && break; sleep 0.2; done
echo "pgmaitre pid $PID on :$OURS_PORT (pool_mode transaction, default_pool_size 20, weights $WEIGHTS); output in $OUT"

TARGETS="direct-primary pgbouncer-tx ours" WORKLOADS="S-simple S-extended S-prepared tpcb-simple" \
  CLIENTS="$CLIENTS" CLIENTS_S_SIMPLE="$CLIENTS" DURATION="$DURATION" LAT_REPS=0 OUT="$OUT/bench" \
  OURS_PORT="$OURS_PORT" "$SHARED/bench.sh" | tee "$OUT/bench.txt"

bouncer=$(ss -ltnpH 'sport = :16432' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
echo
echo "RSS per $IDLE idle client connections (logged in, doing nothing):"
node dist/bench/e2e/idle-clients.js "$OURS_PORT" "$PID" "$IDLE" pgmaitre
[ -n "$bouncer" ] && node dist/bench/e2e/idle-clients.js 16432 "$bouncer" "$IDLE" pgbouncer-tx
