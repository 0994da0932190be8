#!/usr/bin/env bash
# =============================================================================
# bench/query-cache.sh — the query cache on a hot-key read workload (issue 18), one run, side by side
# =============================================================================
# Workload: ../shared/bench/hot-key.sql (SELECT abalance FROM pgbench_accounts WHERE aid = :aid,
# aid in 1..1000), CLIENTS clients (16), -M simple / extended / prepared, DURATION seconds each.
# Targets, all started before the first measure and measured in turn for each mode (so that the
# machine's load drifts alike over every target; direct is measured first and last):
#   direct      the primary (15432)
#   off         pgmaitre, cache off                     127.0.0.1:9999
#   shmem       pgmaitre, memqcache_method = shmem       127.0.0.1:9998
#   shmem-w2    the same, worker_processes = 2           127.0.0.1:9997
#   memcached   pgmaitre, memqcache_method = memcached   127.0.0.1:9996 (a memcached started here on MC_PORT)
# over the lab cluster (15432 primary, 15433/15434 standbys). Every process started here is stopped
# by pid at the end. For each: TPS, the ratio to direct (the mean of the two direct runs of that
# mode), pgmaitre's CPU per transaction (utime+stime of its processes from /proc / transactions),
# its RSS after the run (all its processes), SHOW POOL_CACHE's hit ratio and used_cache_entries_size
# (shmem: bounded by memqcache_total_size, 8 MB here; 0 with memcached).
#
# BEFORE=<git revision> (or the directory of a built tree): also measures it side by side, as the targets off-before,
# shmem-before, shmem-w2-before and memcached-before (its own memcached on MC_PORT+1), listed in
# TARGETS (default with BEFORE: "off shmem memcached shmem-before memcached-before"). It is built
# in a temporary directory (git archive; removed at the end) with BEFORE_MODULES as its node_modules (default:
# this tree's; a revision needing other packages needs a tree that has them, e.g. /work/main's).
# Build it first (outside the lock) by giving a directory. The load average (uptime) is printed
# before and after.
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
BEFORE=${BEFORE:-}
if [ -n "$BEFORE" ]; then TARGETS=${TARGETS:-"off shmem memcached shmem-before memcached-before"}; else TARGETS=${TARGETS:-"off shmem shmem-w2 memcached"}; fi
MC_PORT=${MC_PORT:-21211}
SCRIPT=${SCRIPT:-../shared/bench/hot-key.sql}
OUT=$(mktemp -d /tmp/pgm-qc-bench-XXXX)
declare -A PID PORT
PORT[off]=9999; PORT[shmem]=9998; PORT[shmem-w2]=9997; PORT[memcached]=9996
PORT[off-before]=9995; PORT[shmem-before]=9994; PORT[shmem-w2-before]=9993; PORT[memcached-before]=9992
MC_PIDS=""
BEFORE_DIR=""
cleanup() {
  for t in "${!PID[@]}"; do kill "${PID[$t]}" 2>/dev/null && wait "${PID[$t]}" 2>/dev/null || true; done
  for p in $MC_PIDS; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  if [ -n "$BEFORE_DIR" ]; then rm -rf "$BEFORE_DIR"; fi
}
trap cleanup EXIT
echo "load before: $(uptime)"
KEEP_BEFORE=""
if [ -d "$BEFORE" ]; then
  KEEP_BEFORE=$BEFORE
elif [ -n "$BEFORE" ]; then
  BEFORE_DIR=$(mktemp -d /tmp/pgm-qc-before-XXXX)
  git archive "$BEFORE" | tar -x -C "$BEFORE_DIR"
  ln -s "${BEFORE_MODULES:-$(pwd)/node_modules}" "$BEFORE_DIR/node_modules"
  (cd "$BEFORE_DIR" && npx tsc -p . >/dev/null) || { echo "BEFORE=$BEFORE does not build"; exit 1; }
fi

# CPU ticks of a process and its children (the worker processes).
cpu_ticks() {
  local total=0 p
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat")))
  done
  echo "$total"
}
rss_mb() {
  local total=0 p
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    [ -r "/proc/$p/status" ] && total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status")))
  done
  echo $((total / 1024))
}
hz=$(getconf CLK_TCK)

start_pgmaitre() { # $1 = target, $2 = extra config lines
  local conf="$OUT/pgpool-$1.conf"
  cat > "$conf" <<CONF
listen_addresses = '127.0.0.1'
port = ${PORT[$1]}
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
$2
CONF
  local dir=.
  case $1 in *-before) dir=${KEEP_BEFORE:-$BEFORE_DIR} ;; esac
  node "$dir/bin/pgmaitre.js" -n -f "$conf" > "$OUT/pgmaitre-$1.log" 2>&1 &
  PID[$1]=$!
  for _ in $(seq 1 300); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "${PORT[$1]}" && return 0; sleep 0.1; done
  echo "pgmaitre ($1) did not start"; cat "$OUT/pgmaitre-$1.log"; exit 1
}

declare -A DIRECT
run() { # $1 target $2 mode
  local port=15432 pid="" before=0 after=0
  if [ "$1" != direct ] && [ "$1" != direct-again ]; then port=${PORT[$1]}; pid=${PID[$1]}; fi
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  "$PGBIN/pgbench" -n -f "$SCRIPT" -M "$2" -c "$CLIENTS" -j 2 -T "$DURATION" -h 127.0.0.1 -p "$port" -U postgres bench > "$OUT/$1-$2.txt" 2>&1
  local tps tx failed cpu="-" rss="-" ratio="-" used="-"
  tps=$(awk '/^tps = / {printf "%d", $3}' "$OUT/$1-$2.txt")
  tx=$(awk '/number of transactions actually processed/ {print $6}' "$OUT/$1-$2.txt" | cut -d/ -f1)
  failed=$(awk '/number of failed transactions/ {print $5}' "$OUT/$1-$2.txt")
  if [ -n "$pid" ]; then
    after=$(cpu_ticks "$pid")
    cpu=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$tx" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    rss=$(rss_mb "$pid")
    local pc
    pc=$("$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d bench -Atc 'SHOW POOL_CACHE' 2>/dev/null || echo "")
    ratio=$(echo "$pc" | cut -d'|' -f3)
    used=$(echo "$pc" | awk -F'|' 'NF >= 7 { printf "%.2f", $7 / 1048576 }')
  fi
  echo "$1 $2 $tps $cpu $rss ${ratio:--} ${used:--} ${failed:-?}" >> "$OUT/raw.txt"
}

for t in $TARGETS; do
  case $t in
    off|off-before) start_pgmaitre "$t" "" ;;
    shmem|shmem-before) start_pgmaitre "$t" "memory_cache_enabled = on
memqcache_method = 'shmem'
memqcache_total_size = 8388608" ;;
    shmem-w2|shmem-w2-before) start_pgmaitre "$t" "memory_cache_enabled = on
memqcache_method = 'shmem'
memqcache_total_size = 8388608
worker_processes = 2" ;;
    memcached|memcached-before)
      mc_port=$MC_PORT
      [ "$t" = memcached-before ] && mc_port=$((MC_PORT + 1))
      /usr/bin/memcached -l 127.0.0.1 -p "$mc_port" -U 0 -t 1 $( [ "$(id -u)" = 0 ] && echo "-u nobody" ) &
      MC_PIDS="$MC_PIDS $!"
      sleep 0.5
      start_pgmaitre "$t" "memory_cache_enabled = on
memqcache_method = 'memcached'
memqcache_memcached_host = '127.0.0.1'
memqcache_memcached_port = $mc_port" ;;
  esac
done

for m in $MODES; do
  run direct "$m"
  for t in $TARGETS; do run "$t" "$m"; done
  run direct-again "$m"
done

printf '%-17s %-9s %8s %9s %10s %8s %10s %9s %7s\n' target mode tps 'x direct' 'cpu_us/tx' 'rss_MB' hit_ratio 'cache_MB' failed | tee "$OUT/table.txt"
for m in $MODES; do
  d1=$(awk -v m="$m" '$1 == "direct" && $2 == m {print $3}' "$OUT/raw.txt")
  d2=$(awk -v m="$m" '$1 == "direct-again" && $2 == m {print $3}' "$OUT/raw.txt")
  awk -v m="$m" -v d="$(( (d1 + d2) / 2 ))" '$2 == m { printf "%-17s %-9s %8s %9.2f %10s %8s %10s %9s %7s\n", $1, $2, $3, $3 / d, $4, $5, $6, $7, $8 }' "$OUT/raw.txt" | tee -a "$OUT/table.txt"
done
echo "load after: $(uptime)"
echo "raw output: $OUT (memqcache_total_size for shmem: 8 MB; CLIENTS=$CLIENTS DURATION=$DURATION)"
