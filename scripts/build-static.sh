#!/bin/sh
# build-static.sh OUTDIR [COMMAND...]
#
# The one place that says how syncgate's release binaries are built. The
# Dockerfile runs it, and deploy/static_test.go runs it too and starts the result
# in an empty root directory, so the image and the test cannot drift apart.
#
# It builds each named command of ./cmd (default: gateway publisher) into
# OUTDIR/<name> as a static, position-dependent binary with no cgo, no build
# paths and no symbol tables: the binary needs nothing from the filesystem it
# runs on, which is what lets the image be FROM scratch. GOOS and GOARCH are
# taken from the environment, so `docker buildx --platform` cross-compiles.
set -eu

if [ "$#" -lt 1 ]; then
	echo "usage: $0 OUTDIR [COMMAND...]" >&2
	exit 2
fi
out=$1
shift
if [ "$#" -eq 0 ]; then
	set -- gateway publisher
fi

mkdir -p "$out"
for name in "$@"; do
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/$name" "./cmd/$name"
done
