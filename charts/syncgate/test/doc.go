// Package test renders the syncgate Helm chart with a pinned Helm and checks
// the result: `helm lint --strict`, then every manifest decoded strictly into
// its Kubernetes API type (unknown or miscased fields fail, as they would with
// the API server's strict field validation), then what the manifests promise
// (probes, drain timing, non-root read-only pods, secret references, the
// Ingress and monitoring wiring).
//
// It is a module of its own so that the gateway's module never depends on the
// Kubernetes API packages. Run it with `make test-chart`, or
// `cd charts/syncgate/test && go test ./...`.
package test
