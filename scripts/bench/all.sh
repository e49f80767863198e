#!/bin/bash
# Benchmark helpers as run for BENCHMARKS.md. Build first:
#   go build -o /tmp/bench/gateway ./cmd/gateway && go build -o /tmp/bench/loadgen ./cmd/loadgen
# all.sh TAG: scenarios 1-5; gateways on core 0, load generators on core 1.
TAG=$1; cd /tmp/bench; mkdir -p out/$TAG
S=bench-secret-0123456789abcdef0123456789
one() { # name, loadgen args... ; one in-memory gateway on 18080
  local name=$1; shift
  ./gw.sh 18080 0 > gw.pid; sleep 1; local GW=$(cat gw.pid)
  mkdir -p out/$TAG/$name
  ./lg.sh -url http://127.0.0.1:18080 -pid $GW -metrics http://127.0.0.1:18081/metrics -label "$name" \
     -json out/$TAG/$name/report.json -gateway-profiles out/$TAG/$name "$@" > out/$TAG/$name/report.txt 2>&1
  ./stop.sh $GW
}
one s1-10k -conns 10000 -duration 0 -settle 5s
one s2-r40 -conns 10000 -rate 40 -batch-interval 100ms -duration 10s
one s2-r20 -conns 10000 -rate 20 -batch-interval 100ms -duration 10s
one s2-single-r10 -conns 10000 -publish http -rate 10 -duration 10s
one s3 -conns 10000 -collections 10000 -rate 2000 -batch-interval 50ms -duration 10s

# 1 at 50k: three gateways of 16,667 (RLIMIT_NOFILE hard limit 20,000 per process here).
P=(); for port in 18080 18090 18100; do P+=($(./gw.sh $port 0)); done; sleep 1
mkdir -p out/$TAG/s1-50k
for i in 0 1 2; do port=$((18080+10*i))
  ./lg.sh -url http://127.0.0.1:$port -pid ${P[$i]} -metrics http://127.0.0.1:$((port+1))/metrics -conns 16667 -duration 0 \
    -settle 10s -source-ip-first $((1+i)) -label "s1-50k part $i" -json out/$TAG/s1-50k/report-$i.json > out/$TAG/s1-50k/report-$i.txt 2>&1 &
done; wait
for p in ${P[@]}; do ./stop.sh $p; done

# 4 and 5: Redis on 16379 (unpinned), gateways on core 0.
redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no > out/$TAG/redis.log 2>&1 & RP=$!; sleep 1
R=redis://127.0.0.1:16379
A=$(./gw.sh 18080 0 $R); B=$(./gw.sh 18090 0 $R); sleep 1
mkdir -p out/$TAG/s4
./lg.sh -url http://127.0.0.1:18080,http://127.0.0.1:18090 -pid $A,$B -metrics http://127.0.0.1:18081/metrics,http://127.0.0.1:18091/metrics \
  -conns 10000 -rate 40 -batch-interval 100ms -duration 10s -label s4 -json out/$TAG/s4/report.json -gateway-profiles out/$TAG/s4 > out/$TAG/s4/report.txt 2>&1
./stop.sh $A; ./stop.sh $B
A=$(./gw.sh 18080 0 $R); sleep 1
for m in "http -publishers 8" "http-batch -batch 100 -publishers 4" "redis -redis-url $R -batch 100 -publishers 4"; do
  n=s5-$(echo $m | cut -d' ' -f1); mkdir -p out/$TAG/$n
  ./lg.sh -url http://127.0.0.1:18080 -pid $A -metrics http://127.0.0.1:18081/metrics -conns 100 -collections 100 -rate 0 -duration 5s \
     -publish $m -label $n -json out/$TAG/$n/report.json > out/$TAG/$n/report.txt 2>&1
done
./stop.sh $A; ./stop.sh $RP
echo done
