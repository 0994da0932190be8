#!/usr/bin/env bash
# connect-pair.sh — two pgmaitre builds measured at the same moment under `pgbench -C -S` (a new
# connection per transaction): the older one (BEFORE, a built checkout) on $BEFORE_PORT, this
# worktree's on $OURS_PORT, each warmed up by WARM×8 connections, then ROUNDS rounds of PER×8
# connections to both at once; each round prints both builds' CPU per connection (utime+stime of
# all their threads from /proc, divided by the connections) and now/before. On a loaded host the
# two builds share the same minutes, which bench/connect.sh (one build after the other) cannot
# give: compare builds with this, compare with PgBouncer with connect.sh.
#
# Over the shared lab cluster (../shared/bench/cluster.sh start; no peers needed), under the lock:
#   flock /tmp/shared-bench.lock bash -c '../shared/bench/cluster.sh start && \
#     BEFORE=/path/to/checkout bench/connect-pair.sh; ../shared/bench/cluster.sh stop'
# Options: MODES="transaction session" WARM=750 PER=150 ROUNDS=4 OURS_PORT=9999 BEFORE_PORT=9998
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${BEFORE:?BEFORE=/path/to/older/checkout (built)}
OURS_PORT=${OURS_PORT:-9999}
BEFORE_PORT=${BEFORE_PORT:-9998}
MODES=${MODES:-transaction session}
WARM=${WARM:-750}
PER=${PER:-150}
ROUNDS=${ROUNDS:-4}
DB=${DB:-bench}
OUT=${OUT:-/tmp/pgmaitre-connect-pair-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)
(exec 3<>/dev/tcp/127.0.0.1/15432) 2>/dev/null || { echo "nothing listens on 127.0.0.1:15432: start ../shared/bench/cluster.sh first" >&2; exit 1; }
[ -f dist/src/main.js ] || { echo "run npm run build first" >&2; exit 1; }
[ -f "$BEFORE/dist/src/main.js" ] || { echo "BEFORE=$BEFORE: no dist/src/main.js there (build it first)" >&2; exit 1; }
for p in "$OURS_PORT" "$BEFORE_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "127.0.0.1:$p is taken" >&2; exit 1; fi
done

conf() { # port mode
  cat <<EOC
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = ''
pcp_listen_addresses = ''
http_port = 0
pid_file_name = ''
backend_hostname0 = '127.0.0.1'
backend_port0 = 15432
backend_weight0 = 1
backend_hostname1 = '127.0.0.1'
backend_port1 = 15433
backend_weight1 = 0
backend_hostname2 = '127.0.0.1'
backend_port2 = 15434
backend_weight2 = 0
sr_check_user = 'postgres'
health_check_user = 'postgres'
health_check_period = 10
enable_pool_hba = off
num_init_children = 64
pool_mode = '$2'
default_pool_size = 20
log_min_messages = warning
EOC
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
B=; N=
stop() { for p in $B $N; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; B=; N=; }
trap stop EXIT
both() { # transactions-per-client label
  pgbench -n -C -S -c 8 -j 2 -t "$1" -h 127.0.0.1 -p "$BEFORE_PORT" -U postgres "$DB" >"$OUT/before-$2.txt" 2>&1 & local p1=$!
  pgbench -n -C -S -c 8 -j 2 -t "$1" -h 127.0.0.1 -p "$OURS_PORT" -U postgres "$DB" >"$OUT/now-$2.txt" 2>&1 & local p2=$!
  wait "$p1" "$p2" || true
}
echo "pgbench -n -C -S -c 8 -j 2, both builds at once: warm-up $((8 * WARM)), then $ROUNDS x $((8 * PER)) connections each; output in $OUT"
for mode in $MODES; do
  conf "$BEFORE_PORT" "$mode" >"$OUT/before-$mode.conf"
  conf "$OURS_PORT" "$mode" >"$OUT/now-$mode.conf"
  node "$BEFORE/bin/pgmaitre.js" -n -f "$OUT/before-$mode.conf" >>"$OUT/before-$mode.log" 2>&1 & B=$!
  node bin/pgmaitre.js -n -f "$OUT/now-$mode.conf" >>"$OUT/now-$mode.log" 2>&1 & N=$!
  for p in "$BEFORE_PORT" "$OURS_PORT"; do
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
  done
  both "$WARM" "$mode-warmup"
  for r in $(seq "$ROUNDS"); do
    b0=$(ticks "$B"); n0=$(ticks "$N")
    both "$PER" "$mode-$r"
    b1=$(ticks "$B"); n1=$(ticks "$N")
    awk -v m="$mode" -v r="$r" -v b=$((b1 - b0)) -v n=$((n1 - n0)) -v c=$((8 * PER)) -v hz="$TCK" \
      'BEGIN { printf "%-12s round %d: before %5.0f us/conn, now %5.0f us/conn, now/before %.2f\n", m, r, b/hz*1e6/c, n/hz*1e6/c, (b > 0 ? n/b : 0) }'
  done
  stop
done
