#!/bin/bash
# Benchmark helpers as run for BENCHMARKS.md. Build first:
#   go build -o /tmp/bench/gateway ./cmd/gateway && go build -o /tmp/bench/loadgen ./cmd/loadgen
# usage: gw.sh PORT CORE [redis-url]  -> starts a gateway, prints its PID
# GW_BIN picks another binary (default /tmp/bench/gateway), e.g. main's for a before/after;
# CORE may be a taskset list ("0" or "0,1"); extra SYNCGATE_* variables pass through.
PORT=$1; CORE=$2
BIN=${GW_BIN:-/tmp/bench/gateway}
ulimit -n $(ulimit -Hn) 2>/dev/null
SYNCGATE_ADDR=127.0.0.1:$PORT SYNCGATE_METRICS_ADDR=127.0.0.1:$((PORT+1)) SYNCGATE_PPROF=true \
SYNCGATE_JWT_SECRET=bench-secret-0123456789abcdef0123456789 SYNCGATE_PUBLISH_KEYS=bench-key \
SYNCGATE_LOG_LEVEL=warn SYNCGATE_SHUTDOWN_GRACE=1s SYNCGATE_REDIS_URL=$3 \
taskset -c $CORE $BIN >/tmp/gw-$PORT.log 2>&1 &
echo $!
