// Package edge guards a node's HTTP listener against peers that have not
// authenticated: the timeouts of the HTTP server (Config.Server), a bound on
// the connections open without having authenticated (Listener), and the
// exemption a long-lived response needs from those timeouts (Stream).
//
// A connection accepted by a Listener is pending, and counted, until it
// authenticates or closes. It authenticates when a handler calls
// Authenticated with a context of its request: the WebSocket and Socket.IO
// handlers once a token verified, the publish endpoint once the key
// matched. From then on it is the authenticated peer's until it closes (a
// publisher's keep-alive connection stays released between requests). When
// MaxUnauthenticated connections are pending, a new one is answered 503 and
// closed at once, without reading from it. Requests that never authenticate
// (/healthz, /readyz, /metrics, a refused key) keep their connection pending
// until it closes, which the timeouts bound.
//
// The header, body and write timeouts apply to every request until a
// handler takes the connection over: a WebSocket upgrade (net/http clears
// the deadlines on hijack; the protocol's own auth timeout and pings take
// over) or a stream that calls Stream. The idle timeout closes keep-alive
// connections between requests.
//
// A Listener and the helpers are safe for concurrent use.
package edge
