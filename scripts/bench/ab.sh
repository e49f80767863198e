#!/bin/bash
# Benchmark helpers as run for BENCHMARKS.md. Build first:
#   go build -o /tmp/bench/gateway ./cmd/gateway && go build -o /tmp/bench/loadgen ./cmd/loadgen
cd /tmp/bench
for round in 1 2; do for v in before after; do
  BIN=/tmp/bench/gateway; [ $v = before ] && BIN=/tmp/bench/gateway-before
  sed "s|/tmp/bench/gateway |$BIN |" gw.sh > gw-ab.sh; chmod +x gw-ab.sh
  GW=$(./gw-ab.sh 18080 0); sleep 1
  ./lg.sh -url http://127.0.0.1:18080 -pid $GW -metrics http://127.0.0.1:18081/metrics -conns 1000 -rate 200 -batch-interval 50ms -duration 8s -settle 1s \
    -label "ab $v $round" -json out/ab/$v-$round.json > out/ab/$v-$round.txt 2>&1
  ./stop.sh $GW
done; done
