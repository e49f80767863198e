#!/bin/bash
# memcurve.sh: memory per idle subscribed connection against connections, as a
# markdown table (BENCHMARKS.md, "Idle connection memory").
#
#   memcurve.sh [GATEWAY_BINARY ...]
#
# For each binary (default /tmp/bench/gateway) and each connection count, it
# starts a fresh gateway pinned to core 0 (memory backplane, as gw.sh does),
# connects that many idle subscribed /v1/ws clients with cmd/loadgen pinned to
# core 1 (-duration 0 -settle 5s: the idle sample is taken 5 s after the last
# connection), and prints one row from loadgen's report: the gateway's RSS,
# and per connection (idle sample minus the gateway's baseline, divided by
# the connections) RSS, Go heap in use, goroutine stacks and goroutines. The
# last column is what the rest of the machine used meanwhile (all busy CPU
# from /proc/stat minus the gateway and the load generator), since the
# machine may be shared.
#
# Environment: LOADGEN (default /tmp/bench/loadgen), PORT (default 25100; the
# metrics listen on PORT+1), CONNS (default "1000 5000 10000 18000"),
# SETTLE (default 5s), SRC_FIRST (default 10: the first run's loopback source
# address 127.0.0.N; each run takes the next, so the TIME_WAIT sockets of one
# run never exhaust the ports of the next). Each run needs as many file
# descriptors as connections in both processes: with RLIMIT_NOFILE 20,000 one
# gateway holds at most ~19,900.
set -u
LOADGEN=${LOADGEN:-/tmp/bench/loadgen}
PORT=${PORT:-25100}
CONNS=${CONNS:-"1000 5000 10000 18000"}
SETTLE=${SETTLE:-5s}
SRC=${SRC_FIRST:-10}
BINS=("$@")
[ ${#BINS[@]} -eq 0 ] && BINS=(/tmp/bench/gateway)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; } # user nice system irq softirq, in ticks
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

echo "| gateway | connections | gateway RSS | RSS/conn | heap/conn | stacks/conn | goroutines/conn | other processes (cores) |"
echo "|---|---|---|---|---|---|---|---|"
for bin in "${BINS[@]}"; do
	for n in $CONNS; do
		SYNCGATE_ADDR=127.0.0.1:$PORT SYNCGATE_METRICS_ADDR=127.0.0.1:$((PORT + 1)) SYNCGATE_PPROF=true \
			SYNCGATE_JWT_SECRET=bench-secret-0123456789abcdef0123456789 SYNCGATE_PUBLISH_KEYS=bench-key \
			SYNCGATE_LOG_LEVEL=warn SYNCGATE_SHUTDOWN_GRACE=1s \
			taskset -c 0 "$bin" >"$OUT/gw.log" 2>&1 &
		gw=$!
		for _ in $(seq 1 100); do
			curl -s -o /dev/null "http://127.0.0.1:$((PORT + 1))/metrics" && break
			sleep 0.1
		done
		b0=$(busy) g0=$(proc_ticks $gw) t0=$(date +%s.%N)
		TIMEFORMAT='%U %S'
		lgcpu=$({ time taskset -c 1 "$LOADGEN" -secret bench-secret-0123456789abcdef0123456789 -key bench-key \
			-progress 0 -url "http://127.0.0.1:$PORT" -pid $gw -metrics "http://127.0.0.1:$((PORT + 1))/metrics" \
			-conns "$n" -duration 0 -settle "$SETTLE" -source-ip-first "$SRC" -json "$OUT/r.json" >"$OUT/lg.txt" 2>&1; } 2>&1)
		b1=$(busy) g1=$(proc_ticks $gw) t1=$(date +%s.%N)
		kill $gw 2>/dev/null
		for _ in $(seq 1 100); do kill -0 $gw 2>/dev/null || break; sleep 0.2; done
		SRC=$((SRC + 1))
		if ! python3 - "$OUT/r.json" "$bin" "$n" "$b0" "$b1" "$g0" "$g1" "$t0" "$t1" "$HZ" "$lgcpu" <<'EOF'; then
import json, sys
path, binary, n, b0, b1, g0, g1, t0, t1, hz, lg = sys.argv[1:]
r = json.load(open(path))
g = r["gateway"]
idle = g["idle"][0]
wall = float(t1) - float(t0)
u, s = lg.split()
other = ((int(b1) - int(b0)) - (int(g1) - int(g0))) / int(hz) - (float(u) + float(s))
c = r["connections"]
if c["established"] != int(n) or c["failed"]:
    sys.exit(f"{binary} {n}: {c['established']} established, {c['failed']} failed")
print(f"| {binary.rsplit('/', 1)[-1]} | {int(n):,} | {idle['rss_bytes'] / 2**20:.1f} MiB | "
      f"**{g['rss_per_conn_bytes'] / 1024:.1f} KiB** | {g['heap_per_conn_bytes'] / 1024:.1f} KiB | "
      f"{g['stack_per_conn_bytes'] / 1024:.1f} KiB | {g['goroutines_per_conn']:.2f} | {max(other, 0) / wall:.2f} |")
EOF
			echo "| $(basename "$bin") | $n | run failed: $(tail -3 "$OUT/lg.txt" | tr '\n' ' ') |"
		fi
	done
done
