#!/bin/bash
# Benchmark helpers as run for BENCHMARKS.md. Build first:
#   go build -o /tmp/bench/gateway ./cmd/gateway && go build -o /tmp/bench/loadgen ./cmd/loadgen
exec taskset -c 1 /tmp/bench/loadgen -secret bench-secret-0123456789abcdef0123456789 -key bench-key -progress 0 "$@"
