#!/usr/bin/env bash
# workers.sh — worker_processes = 1 vs 2, with PgBouncer (transaction mode) and direct, in one run.
#
# Over the shared lab cluster and peers (../shared/bench/cluster.sh start; peers.sh start), starts
# pgmaitre on 127.0.0.1:$OURS_PORT with worker_processes = 1, measures, stops it, then the same
# with 2. Each target runs each workload for $DURATION s at $CLIENTS clients; the proxy's own CPU
# (utime+stime from /proc of the listening process and its children: the supervisor and its
# workers) is divided by the transactions pgbench completed. Workloads:
#   hot-key   ../shared/bench/hot-key.sql -M extended (a primary-key SELECT a standby answers at once:
#             where the proxy, not PostgreSQL, is the bottleneck)
#   S         pgbench -S -M simple (the -S regression check, reads through the standbys)
# Output: target, workload, tps, proxy CPU µs per transaction (PgBouncer: its one process).
# Usage (under the shared lock, stopping what it started):
#   flock /tmp/shared-bench.lock bash -c '../shared/bench/cluster.sh start && ../shared/bench/peers.sh start &&
#     bench/workers.sh; ../shared/bench/peers.sh stop; ../shared/bench/cluster.sh stop'
set -uo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/bench}
OURS_PORT=${OURS_PORT:-9999}
CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-10}
WORKLOADS=${WORKLOADS:-"hot-key S"}
ROUNDS=${ROUNDS:-2}   # w1, w2, w1, w2...: the machine's drift hits both alike
OUT=${OUT:-/tmp/pgmaitre-workers-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)
[ -f dist/src/main.js ] || { echo "run npm run build first" >&2; exit 1; }

cpu_ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
family() { local p; for p in "$@"; do echo $p; pgrep -P $p; done | sort -u; }

run() { # target port pids... ; workload from $wl
  local target=$1 port=$2; shift 2
  local pids=$(family "$@") args
  case $wl in
    hot-key) args="-f $SHARED/hot-key.sql -M extended" ;;
    S) args="-S -M simple" ;;
  esac
  local c0=$(cpu_ticks $pids)
  local out=$(pgbench -n $args -c $CLIENTS -j 2 -T $DURATION -h 127.0.0.1 -p $port -U postgres bench 2>&1)
  local c1=$(cpu_ticks $(family "$@"))
  echo "$out" >"$OUT/$target-$wl.txt"
  local tx=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}' | cut -d/ -f1)
  local tps=$(echo "$out" | awk '/^tps/ {print $3}')
  local failed=$(echo "$out" | awk '/number of failed transactions/ {print $5}')
  awk -v t=$target -v w=$wl -v tps="${tps:-0}" -v tx="${tx:-0}" -v c0=$c0 -v c1=$c1 -v hz=$TCK -v f="${failed:-?}" \
    'BEGIN { printf "%-16s %-8s %10.0f %12.1f %8s\n", t, w, tps, (tx>0 && c1>c0 ? (c1-c0)/hz*1e6/tx : 0), f }'
}

start_ours() { # workers
  local conf="$OUT/pgmaitre-$1.conf"
  cat >"$conf" <<EOF
listen_addresses = '127.0.0.1'
port = $OURS_PORT
unix_socket_directories = ''
pcp_listen_addresses = ''
http_port = 0
pid_file_name = ''
backend_hostname0 = '127.0.0.1'
backend_port0 = 15432
backend_weight0 = 0
backend_hostname1 = '127.0.0.1'
backend_port1 = 15433
backend_weight1 = 1
backend_hostname2 = '127.0.0.1'
backend_port2 = 15434
backend_weight2 = 1
sr_check_user = 'postgres'
health_check_user = 'postgres'
health_check_period = 10
enable_pool_hba = off
num_init_children = 64
log_min_messages = warning
worker_processes = $1
EOF
  node bin/pgmaitre.js -n -f "$conf" >"$OUT/pgmaitre-$1.log" 2>&1 &
  OURS_PID=$!
  for _ in $(seq 1 120); do
    if [ "$1" = 1 ]; then (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null && break
    # every worker listening (their start, WASM included, is not measured)
    else grep -q '"event":"workers_ready"' "$OUT/pgmaitre-$1.log" && break; fi
    sleep 0.5
  done
  sleep 1
}
stop_ours() { kill "$OURS_PID" 2>/dev/null; wait "$OURS_PID" 2>/dev/null; }

printf '%-16s %-8s %10s %12s %8s\n' target workload tps 'cpu_us/tx' failed
PGB_PID=$(cat /tmp/lab-pgbouncer-tx/pgbouncer.pid 2>/dev/null || echo)
for wl in $WORKLOADS; do
  for r in $(seq 1 $ROUNDS); do
    run direct-standby 15433
    [ -n "$PGB_PID" ] && run pgbouncer-tx 16432 $PGB_PID
    for w in 1 2; do
      start_ours $w
      run "pgmaitre-w$w" $OURS_PORT $OURS_PID
      stop_ours
    done
  done
done
echo "raw output: $OUT"
