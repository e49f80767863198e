#!/bin/bash
# Benchmark helpers as run for BENCHMARKS.md. Build first:
#   go build -o /tmp/bench/gateway ./cmd/gateway && go build -o /tmp/bench/loadgen ./cmd/loadgen
# LG_BIN picks another loadgen binary, LG_CORE another core (default 1).
exec taskset -c ${LG_CORE:-1} ${LG_BIN:-/tmp/bench/loadgen} -secret bench-secret-0123456789abcdef0123456789 -key bench-key -progress 0 "$@"
