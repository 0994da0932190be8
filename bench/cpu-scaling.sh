#!/usr/bin/env bash
# cpu-scaling.sh — pgmaitre's CPU per transaction as clients are added, beside the cheapest Node.js
# pipe and PgBouncer, on the shared lab (../shared/bench). Issue 17, item 9: the cost must not grow
# with the number of clients.
#
#   flock /tmp/shared-bench.lock bench/cpu-scaling.sh          # from the project root, after npm run build
#   CLIENTS="16 64 256" DURATION=8 MODES=simple BEFORE=/path/to/older/dist flock /tmp/shared-bench.lock bench/cpu-scaling.sh
#   WARMUP=2 ...          # a warm-up of 2 s instead of WARMUP_TX transactions (the first version of this script)
#   ROUNDS=3 ...          # every (clients, mode) measured in 3 interleaved rounds (pipe, PgBouncer, session,
#                         # transaction, then again): on a shared host one round's drift hits one target
#                         # only; the summary gives each target's median and its ratio to the pipe's median
#
# It starts the lab cluster (../shared/bench/cluster.sh) and PgBouncer (peers.sh), then for each
# client count and target: starts the target, runs a pgbench warm-up of WARMUP_TX transactions
# (30 000 by default; or WARMUP seconds when set) for the logins and V8's compilation: after 2-3 s
# at the ~2 000 tps of a loaded VM, V8 was still compiling pgmaitre's hot paths, and that
# compilation, shared by fewer transactions where tps was lower, looked like a cost growing with
# clients (docs/performance.md, "Cost as clients are added"), measures
# with ../shared/bench/cpu-per-query.sh (pgbench -S, the proxy's utime+stime per transaction),
# and stops the target by its pid. Targets: pipe (nodepipe-fast.js on 9996), pgbouncer-tx (16432),
# session and transaction (this build of pgmaitre on 9993 / 9994, every read on the primary:
# backend_weight 1,0,0, default_pool_size 20), and with BEFORE=<dist dir> the same two for that
# build (9991 / 9992), so that an old and a new build are compared in one run. Stops what it
# started, peers and cluster included. Output: target, clients, mode, tps, CPU µs per transaction.
set -u
ulimit -n 20000
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=${LAB:-$ROOT/../shared/bench}
CLIENTS=${CLIENTS:-"16 64 256"}; DURATION=${DURATION:-8}; MODES=${MODES:-simple}; WARMUP=${WARMUP:-}; WARMUP_TX=${WARMUP_TX:-30000}
BEFORE=${BEFORE:-}; ROUNDS=${ROUNDS:-1}
# (with BEFORE, each mode's old and new builds are measured back to back: the host's drift hits both alike)
TARGETS=${TARGETS:-"pipe pgbouncer-tx ${BEFORE:+before-session }session ${BEFORE:+before-transaction }transaction"}
WORK=$(mktemp -d /tmp/pgm-cpu-scaling.XXXXXX)

conf() { # conf <name> <port> <pool_mode>
  cat >"$WORK/$1.conf" <<EOF
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = $2
pcp_port = $(($2 + 10000))
unix_socket_directories = '$WORK'
pcp_socket_dir = '$WORK'
pid_file_name = '$WORK/$1.pid'
enable_pool_hba = off
load_balance_mode = on
num_init_children = 290
max_client_conn = 1000
pool_mode = '$3'
default_pool_size = 20
sr_check_user = 'postgres'
health_check_user = 'postgres'
log_min_messages = warning
backend_hostname0 = '127.0.0.1'
backend_port0 = 15432
backend_weight0 = 1
backend_flag0 = 'ALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = 15433
backend_weight1 = 0
backend_hostname2 = '127.0.0.1'
backend_port2 = 15434
backend_weight2 = 0
EOF
}
conf before-session 9991 session; conf before-transaction 9992 transaction
conf session 9993 session; conf transaction 9994 transaction
# Runs a build of pgmaitre from its dist directory (dist/src/main.js's cli()).
cat >"$WORK/run-dist.js" <<'EOF'
require(require('path').resolve(process.argv[2], 'src/main.js')).cli(process.argv.slice(3));
EOF

"$LAB/cluster.sh" start >"$WORK/cluster.log" 2>&1 || { echo "cluster start failed (see $WORK/cluster.log)"; exit 1; }
PEERS=0
case " $TARGETS " in *pgbouncer*) "$LAB/peers.sh" start >"$WORK/peers.log" 2>&1; PEERS=1 ;; esac

PID=; PORT=
start_target() {
  PID=
  case $1 in
  pipe) PORT=9996; PORT=$PORT TARGET_PORT=15432 node "$LAB/nodepipe-fast.js" >"$WORK/pipe.log" 2>&1 & PID=$! ;;
  pgbouncer-tx) PORT=16432 ;;
  before-session) PORT=9991; node "$WORK/run-dist.js" "$BEFORE" -n -f "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 & PID=$! ;;
  before-transaction) PORT=9992; node "$WORK/run-dist.js" "$BEFORE" -n -f "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 & PID=$! ;;
  session) PORT=9993; node "$WORK/run-dist.js" "$ROOT/dist" -n -f "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 & PID=$! ;;
  transaction) PORT=9994; node "$WORK/run-dist.js" "$ROOT/dist" -n -f "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 & PID=$! ;;
  esac
  for _ in $(seq 120); do
    psql -h 127.0.0.1 -p "$PORT" -U postgres -Atc 'select 1' bench >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "$1 did not come up on $PORT" >&2
}

printf '%-20s %5s %-9s %10s %12s\n' target clients mode tps 'cpu_us/tx'
for c in $CLIENTS; do
  for mode in $MODES; do
    for r in $(seq "$ROUNDS"); do
      for t in $TARGETS; do
        start_target "$t"
        if [ -n "$WARMUP" ]; then warm="-T $WARMUP"; else warm="-t $(( (WARMUP_TX + c - 1) / c ))"; fi
        pgbench -n -S -M "$mode" -c "$c" -j 2 $warm -h 127.0.0.1 -p "$PORT" -U postgres bench >/dev/null 2>&1
        which=ours; [ "$t" = pgbouncer-tx ] && which=pgbouncer-tx
        CLIENTS=$c DURATION=$DURATION MODES=$mode TARGETS=$which OURS_PORT=$PORT "$LAB/cpu-per-query.sh" | tail -1 \
          | awk -v t="$t" -v c="$c" '{printf "%-20s %5s %-9s %10s %12s\n", t, c, $2, $3, $4}' | tee -a "$WORK/rows"
        if [ -n "$PID" ]; then kill "$PID"; wait "$PID" 2>/dev/null; fi
      done
    done
  done
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "medians of $ROUNDS interleaved rounds (cpu µs/tx; ratio to the pipe's median in the same rows)"
  printf '%-20s %5s %-9s %10s %12s %8s\n' target clients mode tps 'cpu_us/tx' '÷pipe'
  sort -k2,2n -k3,3 -k1,1 "$WORK/rows" | awk '
    function median(list,   n, a, i, j, t) { n = split(list, a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
    { k = $2 " " $3 " " $1; if (!(k in cpu)) order[++n] = k; cpu[k] = cpu[k] " " $5; tps[k] = tps[k] " " $4 }
    END { for (i = 1; i <= n; i++) { split(order[i], f, " "); m = median(cpu[order[i]]); med[order[i]] = m }
          for (i = 1; i <= n; i++) { split(order[i], f, " "); p = med[f[1] " " f[2] " pipe"]
            printf "%-20s %5s %-9s %10.0f %12.1f %8s\n", f[3], f[1], f[2], median(tps[order[i]]), med[order[i]], (p > 0 ? sprintf("%.2f", med[order[i]] / p) : "-") } }'
fi
[ $PEERS = 1 ] && "$LAB/peers.sh" stop >>"$WORK/peers.log" 2>&1
"$LAB/cluster.sh" stop >>"$WORK/cluster.log" 2>&1
rm -rf "$WORK"
