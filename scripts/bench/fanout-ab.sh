#!/bin/bash
# S2 of issue 13 beside the previous build, alternating, one markdown row per run:
# 2,000 subscribers of one collection, RATE events/s in one request per 100 ms, 10 s.
# usage: fanout-ab.sh RATE ROUNDS [extra loadgen args]
# Env: BEFORE (default /tmp/bench/gateway-before), AFTER (default /tmp/bench/gateway),
#   LG_BIN (see lg.sh), PORT (default 26080), OUT (default /tmp/bench/out/fanout-ab).
RATE=$1; ROUNDS=$2; shift 2
cd "$(dirname "$0")"
BEFORE=${BEFORE:-/tmp/bench/gateway-before}; AFTER=${AFTER:-/tmp/bench/gateway}
PORT=${PORT:-26080}; OUT=${OUT:-/tmp/bench/out/fanout-ab}; mkdir -p "$OUT"
echo "| round | build | deliveries/s | events/frame | p50 ms | p99 ms | gateway p99 ≤ ms | µs CPU/delivery | publish call p50 / p99 ms | other cores | result |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 $ROUNDS); do for v in before after; do
  BIN=$AFTER; [ $v = before ] && BIN=$BEFORE
  name=r$RATE-$v-$round
  GW=$(GW_BIN=$BIN ./gw.sh $PORT 0)
  for i in $(seq 1 50); do curl -sf http://127.0.0.1:$((PORT+1))/metrics >/dev/null && break; sleep 0.1; done
  ./lg.sh -url http://127.0.0.1:$PORT -pid $GW -metrics http://127.0.0.1:$((PORT+1))/metrics -conns 2000 -rate $RATE \
    -batch-interval 100ms -duration 10s -settle 1s -label "$name" -json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1
  ./stop.sh $GW
  jq -r --arg r $round --arg v $v '"| \($r) | \($v) | \(.delivery.deliveries_per_sec|round) | \(.delivery.events_per_frame*100|round/100) | \(.latency.p50_ms*10|round/10) | \(.latency.p99_ms*10|round/10) | \(.gateway.delivery_latency_p99_le_ms) | \(.gateway.cpu_us_per_delivery*1000|round/1000) | \(.publish.request_latency.p50_ms*10|round/10) / \(.publish.request_latency.p99_ms*10|round/10) | \(.machine.other_cores*100|round/100) | \(if (.problems|length)==0 then "clean" else "NOT CLEAN" end) |"' "$OUT/$name.json"
done; done
