#!/usr/bin/env bash
# workers.sh — worker_processes = 1 vs 2, with PgBouncer (transaction mode) and direct, in one run,
# and a table of ratios (docs/performance.md, "Worker processes").
#
# Over the shared lab cluster and peers (../shared/bench/cluster.sh start; peers.sh start), starts
# pgmaitre with worker_processes = 1 on 127.0.0.1:$OURS_PORT and with 2 on $OURS_PORT - 1, side by
# side, and measures every target in turn for $ROUNDS rounds (order reversed every other round).
# Each run is one workload for $DURATION s at $CLIENTS clients; the proxy's own CPU
# (utime+stime from /proc of the listening process and its children: the supervisor and its
# workers) is divided by the transactions pgbench completed. Workloads:
#   hot-key-cache ../shared/bench/hot-key.sql -M extended with memory_cache_enabled = on (shmem):
#             pgmaitre answers from its cache, so pgmaitre itself (not PostgreSQL) is the
#             bottleneck — the workload of the issue's 1.5x target. PgBouncer runs the same
#             script (it has no cache: its row is the reference a single-core pooler reaches).
#   hot-key   the same script, cache off (a primary-key SELECT a standby answers at once)
#   S         pgbench -S -M simple (the -S regression check, reads through the standbys)
# Calibration (hot-key and S): pipe-w1 / pipe-w2 are the cheapest Node.js byte pipe
# (dist/bench/e2e/pipe-workers.js, to the first standby) in 1 and 2 processes behind one port,
# dealt round-robin by Node's cluster module as pgmaitre's workers are. It parses and shares
# nothing: its CPU/tx w2/w1 is what Node.js and the kernel charge for spreading the clients over
# two event loops, and pgmaitre's ratio divided by it ("excess") is what pgmaitre adds to that.
# Calibration (hot-key-cache): canned-w1 / canned-w2 (dist/bench/e2e/canned-workers.js) answer every
# request from constant bytes on pgmaitre's socket path, 1 and 2 processes: a cache hit minus the
# cache, the floor of a Node.js server answering itself, and what this host lets it gain from a second
# process. Each run also reports pgbench's own CPU per transaction and the host's cores (the proxy and
# each worker, pgbench, everything else, idle: /proc/stat), and per round on hot-key-cache the w2/w1
# ratio two idle cores would allow with the CPU per transaction measured (pgbench shares the cores).
# Every measured run follows a warm-up run of $WARMUP s (same target, same workload, not measured).
# Output: one row per target and workload (tps, proxy CPU µs per transaction, pgbench's, the supervisor's
# share, voluntary context switches per transaction of the event-loop threads, the clients each
# process held mid-run, the cores, failed), then per workload the ratios: 2 workers / 1 worker (tps, CPU/tx),
# the pipe's CPU/tx w2/w1 and pgmaitre's excess over it, and each against PgBouncer; the load
# average before and after (the machine is shared: read ratios from one run, not absolute tps).
# Usage (under the shared lock, stopping what it started inside the locked command):
#   flock /tmp/shared-bench.lock bash -c '../shared/bench/cluster.sh start && ../shared/bench/peers.sh start &&
#     ROUNDS=2 WORKLOADS="hot-key-cache S" bench/workers.sh; ../shared/bench/peers.sh stop; ../shared/bench/cluster.sh stop'
# The pipelined cache workload (pgbench cheaper per statement than the server, docs/performance.md):
#   ... ROUNDS=2 WORKLOADS="hot-key-cache hot-key-cache-pipe S" PIPELINE=20 PIPE_MODE=extended bench/workers.sh ...
set -uo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/bench}
OURS_PORT=${OURS_PORT:-9999}   # 1 worker; 2 workers on OURS_PORT - 1
CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-15}   # s of the same workload before a target's first measured run (not measured): see below
WARMUP_NEXT=${WARMUP_NEXT:-3}   # s before its later rounds (already compiled; new connections)
WORKLOADS=${WORKLOADS:-"hot-key-cache hot-key S"}   # and hot-key-cache-pipe (below)
# hot-key-cache-pipe: the same statement, PIPELINE of them per pgbench transaction in one pipeline
# (\startpipeline ... \endpipeline, -M $PIPE_MODE): pgbench sends them in one write and reads the
# answers together, so its CPU per statement falls far below the server's (a cheap load
# generator). Its tps and CPU figures are per statement (pgbench's transactions × PIPELINE).
PIPELINE=${PIPELINE:-20}
PIPE_MODE=${PIPE_MODE:-extended}
WORKERS=${WORKERS:-"1 2"}
PIPE=${PIPE:-1}       # 0: no pipe calibration rows
PIPE_PORT=${PIPE_PORT:-9996}   # 1 process; 2 on PIPE_PORT - 1
CANNED=${CANNED:-1}   # 0: no canned-server calibration rows (hot-key-cache)
CANNED_PORT=${CANNED_PORT:-9994}   # 1 process; 2 on CANNED_PORT - 1
ROUNDS=${ROUNDS:-3}   # every target in turn, the order reversed every round: the machine's drift hits all alike
OUT=${OUT:-/tmp/pgmaitre-workers-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RES="$OUT/results.tsv"
: >"$RES"
TCK=$(getconf CLK_TCK)
[ -f dist/src/main.js ] || { echo "run npm run build first" >&2; exit 1; }

# The whole host's busy and idle ticks (/proc/stat, every core): "busy idle".
host_ticks() { awk '/^cpu / { idle = $5 + $6; busy = 0; for (i = 2; i <= 9; i++) busy += $i; print busy - idle, idle; exit }' /proc/stat; }
# Each process's own ticks, e.g. "812+790" (per worker: did one of them reach a core?).
each_ticks() { local p out=""; for p in "$@"; do [ -r /proc/$p/stat ] && out="$out+$(awk '{print $14+$15}' /proc/$p/stat)"; done; echo "${out#+}"; }
cpu_ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
family() { local p; for p in "$@"; do echo $p; pgrep -P $p; done | sort -u; }
# Voluntary context switches of the processes' main threads (their event loops): how often they slept.
vcsw() { local t=0 p v; for p in "$@"; do v=$(awk '/^voluntary_ctxt_switches/ {print $2}' /proc/$p/status 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
# Clients each process holds on $1 (established, by pid), e.g. "9+7".
spread() { ss -tnpH state established "( sport = :$1 )" 2>/dev/null | grep -o 'pid=[0-9]*' | sort | uniq -c | awk '{print $1}' | sort -rn | paste -sd+; }

# The pipelined script: PIPELINE hot-key SELECTs (each its own random aid) in one pipeline.
PIPE_SQL="$OUT/hot-key-pipe.sql"
{ echo '\startpipeline'; for _ in $(seq 1 "$PIPELINE"); do echo '\set aid random(1, 1000)'; echo 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;'; done; echo '\endpipeline'; } >"$PIPE_SQL"

run() { # target port pids... ; workload from $wl
  local target=$1 port=$2; shift 2
  local pids=$(family "$@") args qpt=1
  case $wl in
    hot-key|hot-key-cache) args="-f $SHARED/hot-key.sql -M extended" ;;
    hot-key-cache-pipe) args="-f $PIPE_SQL -M $PIPE_MODE"; qpt=$PIPELINE ;;
    S) args="-S -M simple" ;;
  esac
  # Warm-up, not measured. A Node.js process runs its code interpreted until V8 has compiled the
  # hot paths: the first ~10^4 transactions of each process cost 3-5x the CPU of the steady state,
  # and each worker process warms up on its own (half the traffic each: twice as long). Measured
  # cold, on a CPU-starved host, that start-up looks like a collapse of 2 workers (docs/performance.md).
  # A pipeline is answered from the cache only when every statement in it is stored, and a
  # pipeline with a miss stores nothing: the lone statements fill the cache first.
  [ $qpt -gt 1 ] && pgbench -n -f $SHARED/hot-key.sql -M $PIPE_MODE -c $CLIENTS -j 2 -T 3 -h 127.0.0.1 -p $port -U postgres bench >/dev/null 2>&1
  [ "${warm:-$WARMUP}" -gt 0 ] && pgbench -n $args -c $CLIENTS -j 2 -T ${warm:-$WARMUP} -h 127.0.0.1 -p $port -U postgres bench >/dev/null 2>&1
  # The worker processes (children of the listening process): with 2 workers, each one's CPU.
  local kids=""; [ -n "${1:-}" ] && kids=$(pgrep -P $1 | sort -n)
  local c0=$(cpu_ticks $pids) s0=$(cpu_ticks ${1:-}) v0=$(vcsw $pids) k0=$(each_ticks $kids) h0=$(host_ticks) w0=$(date +%s%N)
  ( sleep $((DURATION / 2)); spread $port >"$OUT/spread" ) &
  local spid=$!
  # pgbench's own CPU (its threads, user + system): the subshell's cutime + cstime once pgbench is
  # waited for (fields 16 and 17 of /proc/<subshell>/stat), printed after its output.
  local out=$(pgbench -n $args -c $CLIENTS -j 2 -T $DURATION -h 127.0.0.1 -p $port -U postgres bench 2>&1
              read -r -a st </proc/$BASHPID/stat; echo "pgbench_ticks ${st[15]} ${st[16]}")
  local c1=$(cpu_ticks $pids) s1=$(cpu_ticks ${1:-}) v1=$(vcsw $pids) k1=$(each_ticks $kids) h1=$(host_ticks) w1=$(date +%s%N)
  wait $spid
  local pgbt=$(echo "$out" | awk '/^pgbench_ticks/ {print $2 + $3}')
  local elapsed=$(awk -v a=$w0 -v b=$w1 'BEGIN { print (b - a) / 1e9 }')   # the window of every tick count above
  local sp=$(cat "$OUT/spread" 2>/dev/null); [ -n "$*" ] || sp=-
  echo "$out" >"$OUT/$target-$wl-r$r.txt"
  # Per statement: a pipelined transaction is $qpt statements.
  local tx=$(echo "$out" | awk -v q=$qpt '/number of transactions actually processed/ {split($NF, a, "/"); print a[1] * q}')
  local tps=$(echo "$out" | awk -v q=$qpt '/^tps/ {print $3 * q}')
  local failed=$(echo "$out" | awk '/number of failed transactions/ {print $5}')
  # sup_us/tx: the listening process alone (with 2 workers: the supervisor, which only accepts).
  # Cores (CPU seconds per second of the run) taken by the proxy, each worker, pgbench, everything
  # else on the host (PostgreSQL, the other jobs), and left idle: what the host gave each target.
  awk -v t=$target -v w=$wl -v tps="${tps:-0}" -v tx="${tx:-0}" -v c0=$c0 -v c1=$c1 -v s0=${s0:-0} -v s1=${s1:-0} -v hz=$TCK -v f="${failed:-?}" -v r=$r \
    -v v0=$v0 -v v1=$v1 -v sp="${sp:--}" -v pgbt="${pgbt:-0}" -v el="${elapsed:-$DURATION}" -v k0="$k0" -v k1="$k1" -v h0="$h0" -v h1="$h1" \
    'BEGIN { cpu = (tx>0 && c1>c0) ? (c1-c0)/hz*1e6/tx : 0; sup = (tx>0 && s1>=s0) ? (s1-s0)/hz*1e6/tx : 0;
             vcs = (tx>0 && v1>=v0) ? (v1-v0)/tx : 0; pgb = tx>0 ? pgbt/hz*1e6/tx : 0;
             if (el <= 0) el = 1
             ours = (c1-c0)/hz/el; pgbc = pgbt/hz/el
             split(h0, a, " "); split(h1, b, " "); busy = (b[1]-a[1])/hz/el; idle = (b[2]-a[2])/hz/el
             others = busy - ours - pgbc; if (others < 0) others = 0
             each = "-"; n0 = split(k0, x, "+"); n1 = split(k1, y, "+")
             if (n0 > 1 && n0 == n1) { each = ""; for (i = 1; i <= n0; i++) each = each (i > 1 ? "+" : "") sprintf("%.2f", (y[i]-x[i])/hz/el) }
             printf "%-16s %-14s %2d %8.0f %9.1f %8.1f %7.1f %7.3f %7s %6.2f %9s %6.2f %6.2f %5.2f %6s\n", t, w, r, tps, cpu, pgb, sup, vcs, sp, ours, each, pgbc, others, idle, f;
             printf "%s\t%s\t%d\t%.0f\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%s\n", t, w, r, tps, cpu, pgb, ours, pgbc, others, idle, each, sp >> "'"$RES"'" }'
}

start_ours() { # workers cache(on|off) port; sets OURS_PID
  local conf="$OUT/pgmaitre-$1-$2.conf" OURS_PORT=$3
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
memory_cache_enabled = $2
memqcache_method = 'shmem'
EOF
  node bin/pgmaitre.js -n -f "$conf" >"$OUT/pgmaitre-$1-$2.log" 2>&1 &
  OURS_PID=$!
  for _ in $(seq 1 120); do
    if [ "$1" = 1 ]; then (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null && break
    # every worker listening (their start, WASM included, is not measured)
    else grep -q '"event":"workers_ready"' "$OUT/pgmaitre-$1-$2.log" && break; fi
    sleep 0.5
  done
  sleep 1
}
start_canned() { # processes port; sets PIPE_PID
  node dist/bench/e2e/canned-workers.js "$1" "$2" >"$OUT/canned-$1.log" 2>&1 &
  PIPE_PID=$!
  for _ in $(seq 1 60); do grep -qs '"event":"workers_ready"' "$OUT/canned-$1.log" && break; sleep 0.5; done
}
start_pipe() { # processes port; sets PIPE_PID
  node dist/bench/e2e/pipe-workers.js "$1" "$2" 15433 >"$OUT/pipe-$1.log" 2>&1 &
  PIPE_PID=$!
  for _ in $(seq 1 60); do grep -qs '"event":"workers_ready"' "$OUT/pipe-$1.log" && break; sleep 0.5; done
}

echo "cores: $(nproc); before: $(uptime)" | tee "$OUT/load.txt"
printf '%-16s %-14s %2s %8s %9s %8s %7s %7s %7s %6s %9s %6s %6s %5s %6s\n' target workload r tps 'cpu_us/tx' 'pgb_us/tx' 'sup_us' 'vcs/tx' clients cores 'each' pgbnch others idle failed
PGB_PID=$(cat /tmp/lab-pgbouncer-tx/pgbouncer.pid 2>/dev/null || echo)
# Every instance of a cache setting runs at once (an idle one costs nothing): the rounds then
# measure them in turn, 1 worker and 2 workers seconds apart, the order swapped every round, so
# the shared host's drift hits both alike. A target is warmed up for $WARMUP s before its first
# measurement of a workload, for $WARMUP_NEXT s (new connections) before the later ones.
declare -A WARMED
for cache in off on; do
  wls=""
  for wl in $WORKLOADS; do
    case $wl in hot-key-cache*) [ $cache = on ] && wls="$wls $wl" ;; *) [ $cache = off ] && wls="$wls $wl" ;; esac
  done
  [ -z "$wls" ] && continue
  declare -A PORT_OF PID_OF
  targets=""
  for w in $WORKERS; do
    port=$((OURS_PORT - w + 1))   # 1 worker on $OURS_PORT, 2 on $OURS_PORT - 1
    start_ours $w $cache $port
    PORT_OF[pgmaitre-w$w]=$port; PID_OF[pgmaitre-w$w]=$OURS_PID; targets="$targets pgmaitre-w$w"
    if [ "$PIPE" = 1 ] && [ $cache = off ]; then
      port=$((PIPE_PORT - w + 1))
      start_pipe $w $port
      PORT_OF[pipe-w$w]=$port; PID_OF[pipe-w$w]=$PIPE_PID; targets="$targets pipe-w$w"
    fi
    if [ "$CANNED" = 1 ] && [ $cache = on ]; then
      port=$((CANNED_PORT - w + 1))
      start_canned $w $port
      PORT_OF[canned-w$w]=$port; PID_OF[canned-w$w]=$PIPE_PID; targets="$targets canned-w$w"
    fi
  done
  [ -n "$PGB_PID" ] && { PORT_OF[pgbouncer-tx]=16432; PID_OF[pgbouncer-tx]=$PGB_PID; targets="$targets pgbouncer-tx"; }
  [ $cache = off ] && { PORT_OF[direct-standby]=15433; PID_OF[direct-standby]=""; targets="direct-standby $targets"; }
  for r in $(seq 1 $ROUNDS); do
    order=$targets
    [ $((r % 2)) = 0 ] && order=$(echo $targets | tr ' ' '\n' | tac | paste -sd' ')
    for wl in $wls; do
      for t in $order; do
        if [ -z "${WARMED[$t-$wl]:-}" ]; then warm=$WARMUP; WARMED[$t-$wl]=1; else warm=$WARMUP_NEXT; fi
        run $t ${PORT_OF[$t]} ${PID_OF[$t]}
      done
    done
  done
  for t in $targets; do
    case $t in pgmaitre-*|pipe-*|canned-*) kill "${PID_OF[$t]}" 2>/dev/null; wait "${PID_OF[$t]}" 2>/dev/null ;; esac
  done
  unset PORT_OF PID_OF
done
echo "cores: $(nproc); after: $(uptime)" | tee -a "$OUT/load.txt"

# Ratios per workload (means over the rounds).
echo
printf '%-14s %12s %12s %12s %10s %14s %14s %14s %14s\n' workload 'tps w2/w1' 'cpu/tx w2/w1' 'cal cpu w2/w1' excess 'tps w1/pgb' 'tps w2/pgb' 'cpu/tx w2/pgb' 'cal tps w2/w1'
awk -F'\t' '
  { k = $1 SUBSEP $2; tps[k] += $4; cpu[k] += $5; n[k]++; wl[$2] = 1; rt[$1 SUBSEP $2 SUBSEP $3] = $4; rc[$1 SUBSEP $2 SUBSEP $3] = $5; if ($3 > R) R = $3
    x = $1 SUBSEP $2 SUBSEP $3; pb[x] = $6; oc[x] = $7; gc[x] = $8; xc[x] = $9; ic[x] = $10; ea[x] = $11 }
  function m(a, t, w) { k = t SUBSEP w; return n[k] ? a[k] / n[k] : 0 }
  function ratio(x, y) { return y > 0 ? sprintf("%.2f", x / y) : "-" }
  END {
    split("hot-key-cache hot-key-cache-pipe hot-key S", order, " ")
    for (i = 1; i <= 4; i++) { w = order[i]; if (!(w in wl)) continue
      pgw = (w == "hot-key-cache") ? "hot-key" : w
      pgb = m(tps, "pgbouncer-tx", w); if (pgb == 0) pgb = m(tps, "pgbouncer-tx", pgw)
      pgc = m(cpu, "pgbouncer-tx", w); if (pgc == 0) pgc = m(cpu, "pgbouncer-tx", pgw)
      ours = m(cpu, "pgmaitre-w1", w) > 0 ? m(cpu, "pgmaitre-w2", w) / m(cpu, "pgmaitre-w1", w) : 0
      cal = (w ~ /^hot-key-cache/) ? "canned" : "pipe"   # the calibration target of the workload
      pipe = m(cpu, cal "-w1", w) > 0 ? m(cpu, cal "-w2", w) / m(cpu, cal "-w1", w) : 0
      printf "%-14s %12s %12s %12s %10s %14s %14s %14s %14s\n", w,
        ratio(m(tps, "pgmaitre-w2", w), m(tps, "pgmaitre-w1", w)), ratio(ours, 1), (pipe > 0) ? ratio(pipe, 1) : "-", (pipe > 0) ? ratio(ours, pipe) : "-",
        ratio(m(tps, "pgmaitre-w1", w), pgb), ratio(m(tps, "pgmaitre-w2", w), pgb), ratio(m(cpu, "pgmaitre-w2", w), pgc),
        ratio(m(tps, cal "-w2", w), m(tps, cal "-w1", w))
    }
    # Each round on its own (w2/w1 tps and CPU/tx measured seconds apart): how far the host swings them.
    for (i = 1; i <= 4; i++) { w = order[i]; if (!(w in wl)) continue
      split("pgmaitre " ((w ~ /^hot-key-cache/) ? "canned" : "pipe"), who, " ")
      for (j = 1; j <= 2; j++) {
        line = ""
        for (r = 1; r <= R; r++) {
          a = who[j] "-w1" SUBSEP w SUBSEP r; b = who[j] "-w2" SUBSEP w SUBSEP r
          if ((a in rt) && (b in rt)) line = line sprintf("  r%d %s/%s", r, ratio(rt[b], rt[a]), ratio(rc[b], rc[a]))
        }
        if (line != "") printf "%-14s %-8s per round, tps/cpu w2/w1:%s\n", w, who[j], line
      }
    }
    # What the host gave each round (cores: pgmaitre, pgbench, everything else, idle) and the ratio
    # two idle cores would allow with the CPU per transaction measured in that round: one process
    # cannot use more than one core, and pgbench runs on the same two cores, so
    #   tps(1 worker) <= min(1 / c1, 2 / (c1 + b1)),  tps(2 workers) <= min(2 / c2, 2 / (c2 + b2))
    # (c = pgmaitre CPU per transaction, b = pgbench CPU per transaction).
    for (i = 1; i <= 4; i++) { w = order[i]; if (!(w in wl)) continue
      split("pgmaitre " ((w ~ /^hot-key-cache/) ? "canned" : "pipe"), who, " ")
      for (j = 1; j <= 2; j++) for (r = 1; r <= R; r++) {
        a = who[j] "-w1" SUBSEP w SUBSEP r; b = who[j] "-w2" SUBSEP w SUBSEP r
        if (!((a in rt) && (b in rt))) continue
        c1 = rc[a]; c2 = rc[b]; b1 = pb[a]; b2 = pb[b]
        t1 = (c1 > 0) ? ((1e6 / c1 < 2e6 / (c1 + b1)) ? 1e6 / c1 : 2e6 / (c1 + b1)) : 0
        t2 = (c2 > 0) ? ((2e6 / c2 < 2e6 / (c2 + b2)) ? 2e6 / c2 : 2e6 / (c2 + b2)) : 0
        # (PostgreSQL answers the workloads without the cache on the same cores: no such ceiling there.)
        printf "%-14s %-8s r%d cores proxy/pgbench/others/idle: w1 %.2f/%.2f/%.2f/%.2f, w2 %.2f/%.2f/%.2f/%.2f (each %s); pgbench us/tx w1 %.1f w2 %.1f%s\n",
          w, who[j], r, oc[a], gc[a], xc[a], ic[a], oc[b], gc[b], xc[b], ic[b], ea[b], b1, b2,
          (w ~ /^hot-key-cache/) ? "; ceiling on 2 idle cores, tps w2/w1 " ratio(t2, t1) : ""
      }
    }
  }' "$RES" | tee "$OUT/ratios.txt"
echo "raw output: $OUT"
