#!/usr/bin/env bash
# =============================================================================
# bench/query-cache.sh — the query cache on a hot-key read workload (issue 18), one run, side by side
# =============================================================================
# Workload: ../shared/bench/hot-key.sql (SELECT abalance FROM pgbench_accounts WHERE aid = :aid,
# aid in 1..1000), CLIENTS clients (16), -M simple / extended / prepared, DURATION seconds each.
# Targets: direct (the primary, 15432), pgmaitre with the cache off, shmem and memcached (a
# memcached started here on MC_PORT, stopped by pid at the end). pgmaitre listens on 9999 over
# the lab cluster (15432 primary, 15433/15434 standbys) and is stopped by pid after each target.
# For each: TPS, pgmaitre's CPU per transaction (utime+stime from /proc / transactions), its RSS
# after the run, SHOW POOL_CACHE's hit ratio.
#
# Run from the project root after `npm run build`, under the shared lock, with the lab cluster:
#   flock /tmp/shared-bench.lock sh -c '../shared/bench/cluster.sh start && bench/query-cache.sh; ../shared/bench/cluster.sh stop'
# Compare ratios from one run, never absolute numbers across runs (2 shared cores).
# =============================================================================
set -euo pipefail
cd "$(dirname "$0")/.."
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-8}
MODES=${MODES:-"simple extended prepared"}
MC_PORT=${MC_PORT:-21211}
SCRIPT=${SCRIPT:-../shared/bench/hot-key.sql}
OUT=$(mktemp -d /tmp/pgm-qc-bench-XXXX)
PGM_PID=""; MC_PID=""
cleanup() {
  [ -n "$PGM_PID" ] && kill "$PGM_PID" 2>/dev/null && wait "$PGM_PID" 2>/dev/null || true
  [ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null && wait "$MC_PID" 2>/dev/null || true
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

start_pgmaitre() { # $1 = extra config lines
  local conf="$OUT/pgpool-$2.conf"
  cat > "$conf" <<CONF
listen_addresses = '127.0.0.1'
port = 9999
unix_socket_directories = ''
pcp_listen_addresses = ''
http_port = 0
pid_file_name = ''
backend_hostname0 = '127.0.0.1'
backend_port0 = 15432
backend_weight0 = 1
backend_hostname1 = '127.0.0.1'
backend_port1 = 15433
backend_weight1 = 1
backend_hostname2 = '127.0.0.1'
backend_port2 = 15434
backend_weight2 = 1
sr_check_user = 'postgres'
health_check_user = 'postgres'
enable_pool_hba = off
num_init_children = 64
log_min_messages = warning
$1
CONF
  node bin/pgmaitre.js -n -f "$conf" > "$OUT/pgmaitre-$2.log" 2>&1 &
  PGM_PID=$!
  for _ in $(seq 1 100); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p 9999 && return 0; sleep 0.1; done
  echo "pgmaitre did not start"; cat "$OUT/pgmaitre-$2.log"; exit 1
}
stop_pgmaitre() { kill "$PGM_PID"; wait "$PGM_PID" 2>/dev/null || true; PGM_PID=""; }

run() { # $1 target $2 port $3 mode
  local before=0 after=0 pid=${PGM_PID:-}
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  "$PGBIN/pgbench" -n -f "$SCRIPT" -M "$3" -c "$CLIENTS" -j 2 -T "$DURATION" -h 127.0.0.1 -p "$2" -U postgres bench > "$OUT/$1-$3.txt" 2>&1
  local tps tx cpu="-" rss="-" ratio="-"
  tps=$(awk '/^tps = / {printf "%d", $3}' "$OUT/$1-$3.txt")
  tx=$(awk '/number of transactions actually processed/ {print $6}' "$OUT/$1-$3.txt" | cut -d/ -f1)
  if [ -n "$pid" ]; then
    after=$(cpu_ticks "$pid")
    cpu=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$tx" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    rss=$(( $(rss_kb "$pid") / 1024 ))
    ratio=$("$PGBIN/psql" -h 127.0.0.1 -p 9999 -U postgres -d bench -Atc 'SHOW POOL_CACHE' 2>/dev/null | cut -d'|' -f3 || echo "-")
  fi
  printf '%-10s %-9s %8s %14s %8s %10s\n' "$1" "$3" "$tps" "$cpu" "$rss" "${ratio:--}" | tee -a "$OUT/table.txt"
}

printf '%-10s %-9s %8s %14s %8s %10s\n' target mode tps 'cpu_us/tx' 'rss_MB' hit_ratio | tee "$OUT/table.txt"
for m in $MODES; do run direct 15432 "$m"; done
start_pgmaitre "" off
for m in $MODES; do run cache-off 9999 "$m"; done
stop_pgmaitre
start_pgmaitre "memory_cache_enabled = on
memqcache_method = 'shmem'
memqcache_total_size = 8388608" shmem
for m in $MODES; do run shmem 9999 "$m"; done
stop_pgmaitre
/usr/bin/memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -t 1 $( [ "$(id -u)" = 0 ] && echo "-u nobody" ) &
MC_PID=$!
sleep 0.5
start_pgmaitre "memory_cache_enabled = on
memqcache_method = 'memcached'
memqcache_memcached_host = '127.0.0.1'
memqcache_memcached_port = $MC_PORT" memcached
for m in $MODES; do run memcached 9999 "$m"; done
stop_pgmaitre
echo "raw output: $OUT (memqcache_total_size for shmem: 8 MB)"
