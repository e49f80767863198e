#!/bin/bash
# Cost curves for BENCHMARKS.md (issue 13), printed as markdown tables:
#  1. gateway CPU per delivery at 1, 10 and 100 events per frame: one
#     collection, SUBS subscribers, one publish request per 100 ms carrying
#     1, 10 or 100 events (rate 10, 100, 1000 ev/s), which the engine
#     coalesces into one frame per connection; the table shows the events
#     per frame achieved, as the clients counted them and as the gateway's
#     syncgate_batch_size_events histogram did;
#  2. latency p50/p99 against subscribers: 100, 1,000 and 10,000
#     subscribers of one collection at SUBRATE events/s (default 5, one
#     per request: one event's fan-out to 10,000 takes ~150 ms here, so
#     at 10/s the 10,000 point is saturated and coalesces).
# Each point is a fresh gateway (gw.sh, core 0) and one loadgen run
# (lg.sh, core 1); "other" is the CPU the rest of the machine used
# meanwhile, in cores of 2: a point taken under load is not comparable.
# usage: curves.sh   Env: GW_BIN, LG_BIN (see gw.sh, lg.sh), PORT (default 26200),
#   OUT (default /tmp/bench/out/curves), SUBS (default 1000), DURATION (default 5s),
#   ROUNDS (default 1: each point once; 2 prints every point twice), SUBRATE (default 5),
#   TABLES (default "epf subs": which tables to run).
cd "$(dirname "$0")"
PORT=${PORT:-26200}; OUT=${OUT:-/tmp/bench/out/curves}; SUBS=${SUBS:-1000}; DURATION=${DURATION:-5s}; ROUNDS=${ROUNDS:-1}
SUBRATE=${SUBRATE:-5}; TABLES=${TABLES:-epf subs}
mkdir -p "$OUT"
command -v jq >/dev/null || { echo "curves.sh needs jq" >&2; exit 2; }

point() { # name, loadgen args...; prints nothing, leaves $OUT/name.json
  local name=$1; shift
  local gw; gw=$(./gw.sh $PORT 0)
  for i in $(seq 1 50); do curl -sf http://127.0.0.1:$((PORT+1))/metrics >/dev/null && break; sleep 0.1; done
  ./lg.sh -url http://127.0.0.1:$PORT -pid $gw -metrics http://127.0.0.1:$((PORT+1))/metrics -settle 1s \
    -duration "$DURATION" -batch-interval 100ms -label "$name" -json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1
  ./stop.sh $gw
}
clean() { jq -r 'if (.problems | length) == 0 then "clean" else "NOT CLEAN: " + (.problems | join("; ")) end' "$1"; }

if [[ " $TABLES " == *" epf "* ]]; then
echo "### CPU per delivery against events per frame ($SUBS subscribers of one collection, one request per 100 ms)"
echo
echo "| events per request | events/frame (clients / gateway) | deliveries/s | gateway CPU µs/delivery | µs/frame | p50 ms | p99 ms | other cores | result |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 $ROUNDS); do
  for per in 1 10 100; do
    name=epf-$per-r$round
    point $name -conns $SUBS -rate $((per * 10))
    f=$OUT/$name.json
    jq -r --arg per $per --arg res "$(clean $f)" '"| \($per) | \(.delivery.events_per_frame*100|round/100) / \(.gateway.events_per_frame*100|round/100) | \(.delivery.deliveries_per_sec|round) | \(.gateway.cpu_us_per_delivery*1000|round/1000) | \(.gateway.cpu_us_per_delivery*.gateway.events_per_frame*100|round/100) | \(.latency.p50_ms*10|round/10) | \(.latency.p99_ms*10|round/10) | \(.machine.other_cores*100|round/100) | \($res) |"' $f
  done
done
echo
fi
if [[ " $TABLES " == *" subs "* ]]; then
echo "### Latency against subscribers (one collection, $SUBRATE events/s, one event per request)"
echo
echo "| subscribers | deliveries/s | events/frame | p50 ms | p99 ms | gateway publish → written p99 ≤ ms | gateway CPU µs/delivery | other cores | result |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 $ROUNDS); do
  for subs in 100 1000 10000; do
    name=subs-$subs-r$round
    point $name -conns $subs -rate $SUBRATE
    f=$OUT/$name.json
    jq -r --arg subs $subs --arg res "$(clean $f)" '"| \($subs) | \(.delivery.deliveries_per_sec|round) | \(.delivery.events_per_frame*100|round/100) | \(.latency.p50_ms*10|round/10) | \(.latency.p99_ms*10|round/10) | \(.gateway.delivery_latency_p99_le_ms) | \(.gateway.cpu_us_per_delivery*1000|round/1000) | \(.machine.other_cores*100|round/100) | \($res) |"' $f
  done
done
fi
