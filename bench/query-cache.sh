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
# (shmem: bounded by memqcache_total_size, 8 MB here; 0 with memcached); pgbench's own CPU per
# transaction, the lab cluster's (its postmasters, live and reaped backends), what everything else on
# the host took and left idle (cores, /proc/stat). Each pgmaitre target is warmed up for WARMUP s (5)
# before each measure. The table ends with the ratio to direct two idle cores would allow with the
# CPU per transaction measured (pgbench and PostgreSQL share the same cores; one process, one core).
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
WARMUP=${WARMUP:-5}   # s of the same workload through a pgmaitre target before each measured run (not measured)
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
# The lab cluster's CPU ticks: its postmasters, their live children (backends, walsenders...)
# and the children they reaped (cutime + cstime): a backend that ends during a run is counted.
pg_ticks() {
  local total=0 p m
  for m in $(awk 'FNR == 1' /tmp/lab-pg/*/postmaster.pid 2>/dev/null); do
    [ -r "/proc/$m/stat" ] && total=$((total + $(awk '{print $14+$15+$16+$17}' "/proc/$m/stat")))
    for p in $(ps -o pid= --ppid "$m" 2>/dev/null); do
      [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$total"
}
# The host's busy and idle ticks (/proc/stat, every core).
host_ticks() { awk '/^cpu / { idle = $5 + $6; busy = 0; for (i = 2; i <= 9; i++) busy += $i; print busy - idle, idle; exit }' /proc/stat; }

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
  local pg0 h0 pg1 h1 pgbt w0 w1
  # Warm-up, not measured: V8 compiles a process's hot paths during its first ~10^4 transactions
  # (3-5x the CPU before: docs/performance.md), each worker on its own; the cache fills.
  if [ "$WARMUP" -gt 0 ] && [ -n "$pid" ]; then
    "$PGBIN/pgbench" -n -f "$SCRIPT" -M "$2" -c "$CLIENTS" -j 2 -T "$WARMUP" -h 127.0.0.1 -p "$port" -U postgres bench >/dev/null 2>&1 || true
    before=$(cpu_ticks "$pid")
  fi
  pg0=$(pg_ticks); h0=$(host_ticks); w0=$(date +%s%N)
  # pgbench's own CPU: the subshell's cutime + cstime once pgbench is waited for.
  pgbt=$( "$PGBIN/pgbench" -n -f "$SCRIPT" -M "$2" -c "$CLIENTS" -j 2 -T "$DURATION" -h 127.0.0.1 -p "$port" -U postgres bench > "$OUT/$1-$2.txt" 2>&1
          read -r -a st </proc/$BASHPID/stat; echo $(( st[15] + st[16] )) )
  sleep 0.3 # the backends of a direct run end and are reaped
  pg1=$(pg_ticks); h1=$(host_ticks); w1=$(date +%s%N)
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
  # pgbench's and PostgreSQL's CPU per transaction, and what everything else took of the host / left idle (cores).
  local el extra
  el=$(awk -v a="$w0" -v b="$w1" 'BEGIN { print (b - a) / 1e9 }')
  extra=$(awk -v hz="$hz" -v n="${tx:-0}" -v g="$pgbt" -v p0="$pg0" -v p1="$pg1" -v h0="$h0" -v h1="$h1" -v c="$cpu" -v el="${el:-$DURATION}" 'BEGIN {
    if (n <= 0) n = 1; if (el <= 0) el = 1; split(h0, a, " "); split(h1, b, " ")
    ours = (c == "-") ? 0 : c * n / 1e6 / el   # (the window also holds the connections and the 0.3 s)
    others = (b[1] - a[1]) / hz / el - ours - g / hz / el - (p1 - p0) / hz / el; if (others < 0) others = 0
    printf "%.1f %.1f %.2f %.2f", g / hz * 1e6 / n, (p1 - p0) / hz * 1e6 / n, others, (b[2] - a[2]) / hz / el }')
  echo "$1 $2 $tps $cpu $rss ${ratio:--} ${used:--} ${failed:-?} $extra" >> "$OUT/raw.txt"
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

printf '%-17s %-9s %8s %9s %10s %8s %10s %9s %7s %10s %9s %7s %5s\n' target mode tps 'x direct' 'cpu_us/tx' 'rss_MB' hit_ratio 'cache_MB' failed 'pgb_us/tx' 'pg_us/tx' others idle | tee "$OUT/table.txt"
for m in $MODES; do
  d1=$(awk -v m="$m" '$1 == "direct" && $2 == m {print $3}' "$OUT/raw.txt")
  d2=$(awk -v m="$m" '$1 == "direct-again" && $2 == m {print $3}' "$OUT/raw.txt")
  awk -v m="$m" -v d="$(( (d1 + d2) / 2 ))" '$2 == m { printf "%-17s %-9s %8s %9.2f %10s %8s %10s %9s %7s %10s %9s %7s %5s\n", $1, $2, $3, $3 / d, $4, $5, $6, $7, $8, $9, $10, $11, $12 }' "$OUT/raw.txt" | tee -a "$OUT/table.txt"
done
# What two idle cores would allow, from the CPU per transaction measured in this run: direct costs
# PostgreSQL p and pgbench b on either core, tps <= 2 / (p + b); a cache hit costs pgmaitre c (one
# process: at most one core) and pgbench b', tps <= min(W / c, 2 / (c + b')) with W processes.
echo "ceiling on 2 idle cores, x direct (from this run's CPU per transaction: pgmaitre c, pgbench b, PostgreSQL p):" | tee -a "$OUT/table.txt"
awk '{ k = $1 SUBSEP $2 } $1 ~ /^direct/ { p[$2] += $10; b[$2] += $9; n[$2]++ } $4 != "-" { c[k] = $4; bb[k] = $9; t[$1] = 1; if (!($2 in seen)) { seen[$2] = 1; modes[++nm] = $2 } }
  END { for (i = 1; i <= nm; i++) { m = modes[i]; if (!n[m]) continue; dp = p[m] / n[m]; db = b[m] / n[m]; direct = 2e6 / (dp + db)
      line = sprintf("  %-9s direct p %.1f + b %.1f us/tx:", m, dp, db)
      for (x in t) { k = x SUBSEP m; if (!(k in c) || c[k] <= 0 || x ~ /^off/) continue
        w = (x ~ /w2/) ? 2 : 1; lim = w * 1e6 / c[k]; both = 2e6 / (c[k] + bb[k]); if (both < lim) lim = both
        line = line sprintf("  %s %.2f", x, lim / direct) }
      print line } }' "$OUT/raw.txt" | tee -a "$OUT/table.txt"
echo "load after: $(uptime)"
echo "raw output: $OUT (memqcache_total_size for shmem: 8 MB; CLIENTS=$CLIENTS DURATION=$DURATION)"
