# The commands CI runs are the commands a person runs: `.ci/run` calls `make test`.
GO ?= go

.PHONY: test test-go test-chart test-js test-socketio lint

## test: everything CI checks (Go with the race detector, then the other suites).
test: lint test-go test-chart test-js test-socketio

## test-go: the Go test suite with the race detector.
test-go:
	$(GO) test -race -count=1 -timeout 10m ./...

## test-chart: helm lint and helm template (pinned Helm, via go run) of charts/syncgate,
## every manifest decoded strictly into the Kubernetes API types. A module of its own.
test-chart:
	cd charts/syncgate/test && $(GO) vet ./... && $(GO) test -count=1 -timeout 15m ./...

## test-js: the browser SDK in clients/js (npm ci, build, unit tests with a fake
## socket, Node tests against real gateway processes, and chromium tests through
## playwright-core; needs the chromium package). Also fails when the committed
## demo page in internal/demo/static is not what the sources build.
JS_GATEWAY := $(CURDIR)/clients/js/node_modules/.cache/syncgate/gateway
test-js:
	cd clients/js && npm ci --no-audit --no-fund
	$(GO) build -o $(JS_GATEWAY) ./cmd/gateway
	cd clients/js && SYNCGATE_GATEWAY_BIN=$(JS_GATEWAY) npm test
	@git diff --quiet -- internal/demo/static || (git diff --stat -- internal/demo/static; echo 'internal/demo/static is stale: run "npm run build:demo" in clients/js and commit it'; exit 1)

## test-socketio: the real socket.io-client (npm, pinned by the lockfile in
## internal/transport/socketio/testdata/node) against two gateway processes on a real Redis.
test-socketio:
	cd internal/transport/socketio/testdata/node && npm ci --no-audit --no-fund
	SYNCGATE_SOCKETIO_NODE=1 $(GO) test -count=1 -timeout 5m -run TestSocketIOClient -v ./internal/transport/socketio

## lint: gofmt, go vet and staticcheck (pinned, run through the module proxy).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
