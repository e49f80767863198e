# The commands CI runs are the commands a person runs: `.ci/run` calls `make test`.
GO ?= go

.PHONY: test test-go test-chart lint

## test: everything CI checks (Go with the race detector, then the other suites).
test: lint test-go test-chart

## test-go: the Go test suite with the race detector.
test-go:
	$(GO) test -race -count=1 -timeout 10m ./...

## test-chart: helm lint and helm template (pinned Helm, via go run) of charts/syncgate,
## every manifest decoded strictly into the Kubernetes API types. A module of its own.
test-chart:
	cd charts/syncgate/test && $(GO) vet ./... && $(GO) test -count=1 -timeout 15m ./...

## lint: gofmt and go vet (staticcheck when installed).
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1)
	$(GO) vet ./...
