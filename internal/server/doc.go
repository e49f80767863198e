// Package server wires the gateway's HTTP surface: the client WebSocket
// endpoint, the publish endpoint, health and readiness, and metrics. It holds
// no state of its own beyond what it is given; cmd/gateway builds it.
package server
