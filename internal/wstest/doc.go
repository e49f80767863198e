// Package wstest drives syncgate over real sockets in tests: Node starts an
// in-process gateway on a loopback listener, Client speaks the client
// protocol with github.com/coder/websocket, and Token mints test tokens.
//
// A Client reads frames on its own goroutine into a bounded buffer; it is
// used from one test goroutine. Everything registers its cleanup with t.
package wstest
