# syntax=docker/dockerfile:1
#
# syncgate image: two static binaries on an empty filesystem.
#
#   docker build -t syncgate .
#   docker run --rm -p 8080:8080 -e SYNCGATE_JWT_SECRET=... -e SYNCGATE_PUBLISH_KEYS=... syncgate
#
# How the binaries are built lives in scripts/build-static.sh, which
# deploy/static_test.go also runs and then starts in an empty chroot: what this
# image needs from its filesystem is tested, not assumed. See docs/operations.md.

# Keep in step with the go directive of go.mod (deploy/static_test.go checks).
ARG GO_VERSION=1.26.8

# The builder runs on the build machine's platform and cross-compiles to the
# target's (docker buildx build --platform linux/amd64,linux/arm64 .).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH sh scripts/build-static.sh /out gateway publisher

FROM scratch
# Root certificates for rediss:// and an https SYNCGATE_JWKS_URL; nothing else
# from the builder is copied.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/gateway /gateway
COPY --from=build /out/publisher /publisher
# The distroless "nonroot" ids; no passwd entry is needed for numeric ids.
USER 65532:65532
# Clients and publishers; Prometheus scrapes /metrics on its own port so the
# metrics never go out through the client-facing load balancer.
ENV SYNCGATE_ADDR=0.0.0.0:8080 \
    SYNCGATE_METRICS_ADDR=0.0.0.0:9090
EXPOSE 8080 9090
ENTRYPOINT ["/gateway"]
