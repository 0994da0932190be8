#!/usr/bin/env bash
# connect.sh — a new connection per transaction (`pgbench -C -S`), the workload of applications that
# connect per request (PHP, serverless, scripts), one run, side by side: direct (the primary),
# PgBouncer transaction and session mode, and pgmaitre in transaction and session mode. For each:
# TPS and the proxy's own CPU per connection (utime+stime of its processes from /proc, divided by
# the connections pgbench made: one per transaction).
#
# Over the shared lab cluster and peers (../shared/bench/cluster.sh start; peers.sh start); starts
# pgmaitre on 127.0.0.1:$OURS_PORT itself, once per pool mode (enable_pool_hba = off, as the lab's
# PgBouncer trusts its users; every statement on the primary, weights 1 0 0, as PgBouncer has one
# backend).
# Usage: bench/connect.sh                          (npm run build first)
#        CLIENTS=8 DURATION=8 ROUNDS=2 WARMUP=3 bench/connect.sh   (WARMUP: seconds of -C load on a fresh pgmaitre first)
#        BEFORE=/path/to/older/checkout bench/connect.sh   (also that build, built, each round: rows pgmaitre-before-*)
#        MODES=transaction bench/connect.sh   (pgmaitre in these pool modes only; PgBouncer's session row only with session)
#        CANNED=0 bench/connect.sh   (no node-canned row)
#
# node-canned (CANNED=1, the default): dist/bench/e2e/canned-workers.js in one process, a "server"
# that answers the login (trust) and every query from constant bytes on pgmaitre's own accept and
# socket path (util/raw-socket.ts), with no backend behind it: the floor of any Node.js process
# that accepts a connection, logs it in and answers one query itself. pgbench runs the -S script
# from a file there (its built-in -S first counts pgbench_branches, which a canned row cannot
# answer). pgmaitre does that and, besides, a backend read and write per query.
set -euo pipefail
cd "$(dirname "$0")/.."
OURS_PORT=${OURS_PORT:-9999}
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-3}
BEFORE=${BEFORE:-}
MODES=${MODES:-"transaction session"}
CANNED=${CANNED:-1}
CANNED_PORT=${CANNED_PORT:-19998}
WEIGHTS=${WEIGHTS:-"1 0 0"}
DB=${DB:-bench}
OUT=${OUT:-/tmp/pgmaitre-connect-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)

for p in 15432 16432 16433; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "nothing listens on 127.0.0.1:$p: start ../shared/bench/cluster.sh and peers.sh first" >&2; exit 1; }
done
[ -f dist/src/main.js ] || { echo "run npm run build first" >&2; exit 1; }
[ -z "$BEFORE" ] || [ -f "$BEFORE/dist/src/main.js" ] || { echo "BEFORE=$BEFORE: no dist/src/main.js there (build it first)" >&2; exit 1; }
if (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null; then echo "127.0.0.1:$OURS_PORT is taken: stop what listens there or set OURS_PORT" >&2; exit 1; fi

cpu_ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }

PID=
stop_ours() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap stop_ours EXIT
start_ours() { # mode [checkout]
  local mode=$1 root=${2:-.} conf="$OUT/pgmaitre-$1.conf"
  read -r w0 w1 w2 <<<"$WEIGHTS"
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
num_init_children = 64
pool_mode = '$mode'
default_pool_size = 20
log_min_messages = warning
EOF
  node "$root/bin/pgmaitre.js" -n -f "$conf" >>"$OUT/pgmaitre-$mode.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null && return 0; sleep 0.1; done
  echo "pgmaitre did not start: $OUT/pgmaitre-$mode.log" >&2; exit 1
}

SCRIPT="$OUT/select-only.sql"
printf '\\set aid random(1, 100000)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n' >"$SCRIPT"
CANNED_PID=
stop_canned() { if [ -n "$CANNED_PID" ]; then kill "$CANNED_PID" 2>/dev/null || true; wait "$CANNED_PID" 2>/dev/null || true; CANNED_PID=; fi; }
trap 'stop_ours; stop_canned' EXIT

run() { # name port pids...
  local name=$1 port=$2; shift 2
  local c0 c1 out tx tps workload=(-S)
  [ "$name" = node-canned ] && workload=(-f "$SCRIPT")
  c0=$(cpu_ticks "$@")
  out=$(pgbench -n -C "${workload[@]}" -c "$CLIENTS" -j 2 -T "$DURATION" -h 127.0.0.1 -p "$port" -U postgres "$DB" 2>&1) || true
  c1=$(cpu_ticks "$@")
  echo "$out" >"$OUT/$name.txt"
  tx=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}' | cut -d/ -f1)
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  awk -v n="$name" -v tps="${tps:-0}" -v tx="${tx:-0}" -v c0="$c0" -v c1="$c1" -v hz="$TCK" -v own="$#" \
    'BEGIN { printf "%-20s %10.0f %18s\n", n, tps, (own > 0 && tx > 0 ? sprintf("%.0f", (c1-c0)/hz*1e6/tx) : "-") }'
}

bouncer_pid() { cat "/tmp/lab-pgbouncer-$1/pgbouncer.pid" 2>/dev/null || true; }

echo "pgbench -n -C -S -c $CLIENTS -j 2 -T $DURATION ($ROUNDS round(s)); output in $OUT"
printf '%-20s %10s %18s\n' target tps 'proxy_cpu_us/conn'
for round in $(seq "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "-- round $round"
  run direct 15432
  run pgbouncer-tx 16432 $(bouncer_pid tx)
  case " $MODES " in *" session "*) run pgbouncer-session 16433 $(bouncer_pid session) ;; esac
  if [ "$CANNED" = 1 ]; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$CANNED_PORT") 2>/dev/null; then echo "127.0.0.1:$CANNED_PORT is taken: set CANNED_PORT" >&2; exit 1; fi
    node dist/bench/e2e/canned-workers.js 1 "$CANNED_PORT" >"$OUT/canned.log" 2>&1 &
    CANNED_PID=$!
    for _ in $(seq 60); do grep -qs '"event":"workers_ready"' "$OUT/canned.log" && break; sleep 0.2; done
    pgbench -n -C -f "$SCRIPT" -c "$CLIENTS" -j 2 -T "$WARMUP" -h 127.0.0.1 -p "$CANNED_PORT" -U postgres "$DB" >/dev/null 2>&1 || true
    run node-canned "$CANNED_PORT" "$CANNED_PID"
    stop_canned
  fi
  for mode in $MODES; do
    for build in ${BEFORE:+before} now; do
      if [ "$build" = before ]; then start_ours "$mode" "$BEFORE"; name="pgmaitre-before-$mode"; else start_ours "$mode"; name="pgmaitre-$mode"; fi
      # warm-up: the first logins compile the code (a second at two clients left much of it to the
      # interpreter on a loaded box; the CPU per connection of the measured run then fell by half
      # from one run to the next)
      pgbench -n -C -S -c "$CLIENTS" -j 2 -T "$WARMUP" -h 127.0.0.1 -p "$OURS_PORT" -U postgres "$DB" >/dev/null 2>&1 || true
      run "$name" "$OURS_PORT" "$PID"
      stop_ours
    done
  done
done
