// Package ws is the native client protocol, GET /v1/ws with the WebSocket
// subprotocol syncgate.v1 (SPEC.md), as a transport of the session engine
// internal/hub.
//
// It holds only the protocol: the upgrade and its checks, authentication
// by header, query or first `auth` message, decoding client ops into
// Session calls (Open/Begin, End, Refresh), and encoding the engine's output
// into frames — one `events` frame per run of a subscription's events (at
// most maxFrameBytes of events each), `subscribed` with recovered:false for
// a gap. Queues, replay, slow consumers, expiry, drain and the connection
// limit are the engine's; the socket layer (close-frame guarantee, close
// counting) is internal/wsconn's.
//
// Concurrency: per connection, the HTTP handler's goroutine hands the
// connection to one reader goroutine; the engine's writer alone calls the
// transport's write methods.
package ws
