#!/bin/bash
# Fan-out over two nodes through Redis (issue 13): 2,000 subscribers of one
# collection split over two gateways sharing one Redis, 200-byte documents,
# 8 HTTP publishers posting to either gateway (-publish-url all; each
# publisher's events are a lane of the stream, checked for loss and order).
# usage: twonode.sh RATE [PINNING] [extra loadgen args]
#   RATE     events/s published in total (deliveries/s = RATE × 2,000)
#   PINNING  "shared" (default): both gateways on core 0, Redis and loadgen on core 1
#            "split": gateway A on core 0, gateway B on core 1, Redis on core 0, loadgen on core 1
# Env: GW_BIN, LG_BIN as for gw.sh/lg.sh; PORT (default 26080: gateways on PORT and PORT+10,
# Redis on PORT+299); OUT (default /tmp/bench/out/twonode).
RATE=$1; PIN=${2:-shared}; shift 2
cd "$(dirname "$0")"
PORT=${PORT:-26080}; RP=$((PORT+299)); OUT=${OUT:-/tmp/bench/out/twonode}/$PIN-$RATE
mkdir -p "$OUT"
case $PIN in
  shared) CA=0; CB=0; CR=1; export LG_CORE=1 ;;
  split)  CA=0; CB=1; CR=0; export LG_CORE=1 ;;
  *) echo "pinning $PIN: want shared or split" >&2; exit 2 ;;
esac
taskset -c $CR redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 & RPID=$!
for i in $(seq 1 50); do redis-cli -p $RP ping >/dev/null 2>&1 && break; sleep 0.1; done
R=redis://127.0.0.1:$RP
A=$(./gw.sh $PORT $CA $R); B=$(./gw.sh $((PORT+10)) $CB $R)
for p in $PORT $((PORT+10)); do for i in $(seq 1 50); do curl -sf http://127.0.0.1:$((p+1))/metrics >/dev/null && break; sleep 0.1; done; done
./lg.sh -url http://127.0.0.1:$PORT,http://127.0.0.1:$((PORT+10)) -publish-url all -pid $A,$B \
  -metrics http://127.0.0.1:$((PORT+1))/metrics,http://127.0.0.1:$((PORT+11))/metrics \
  -conns 2000 -publishers 8 -rate $RATE -batch-interval 100ms -duration 10s -settle 1s \
  -label "twonode $PIN $RATE" -json "$OUT/report.json" -gateway-profiles "$OUT" "$@" > "$OUT/report.txt" 2>&1
RC=$?
./stop.sh $A; ./stop.sh $B; kill $RPID; wait $RPID 2>/dev/null
cat "$OUT/report.txt"
exit $RC
