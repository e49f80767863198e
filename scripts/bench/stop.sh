#!/bin/bash
# Benchmark helpers as run for BENCHMARKS.md. Build first:
#   go build -o /tmp/bench/gateway ./cmd/gateway && go build -o /tmp/bench/loadgen ./cmd/loadgen
# stop.sh PID: SIGTERM and wait (bounded) for exit
kill $1 2>/dev/null; for i in $(seq 1 100); do kill -0 $1 2>/dev/null || exit 0; sleep 0.2; done; echo "still running: $1"
