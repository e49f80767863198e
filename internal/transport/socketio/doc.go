// Package socketio serves /socket.io/: Engine.IO v4 and Socket.IO v5 over
// WebSocket, so apps written against socket.io-client (3.x and 4.x) receive
// syncgate events without changing their code. docs/socketio.md describes
// the mapping for users.
//
// What a socket can do:
//   - CONNECT on namespace "/" with auth {token} (or the upgrade request's
//     Authorization header or ?token=); a bad token gets CONNECT_ERROR.
//   - join-project / leave-project: the project-wide stream (project, "*");
//     database vocabulary events arrive as `database-change`, every other
//     type as `project-event`.
//   - subscribe / unsubscribe {project, collection} with an ack: events
//     arrive under their own type (document:created, …).
//   - auth {token}: refresh the token of the live socket.
//
// Connection state recovery: every event the server emits carries, as its
// last argument, the socket's whole session (each subscription with the
// offset of the last event written on it; see state.go). socket.io-client
// >= 4.6 hands the last one back with its pid when it reconnects, to any
// node, which replays from backplane history and answers with the same pid
// (socket.recovered === true) or, when anything is missing, a fresh session.
//
// Design: Socket.IO is a transport of the session engine internal/hub,
// which owns the connection's queue, its subscriptions, replay and seam,
// slow-consumer close, expiry, drain and the node's connection limit. This
// package keeps only the protocol:
//   - Engine.IO's handshake, heartbeat (transport.Heartbeat) and packets;
//     Socket.IO's packets, CONNECT and its failures (packet.go, handler.go);
//   - the event mapping (mapping.go, events.go): two hub encodings, one per
//     kind of subscription, made once per node;
//   - the recovery state (state.go, writer.go), kept by the writer-side
//     transport and appended to every event it writes, changed by the
//     Meta of queued frames at their place in the queue;
//   - a gap (a backplane Reset, trimmed history) closes the connection
//     with 1012 after what is queued (transport.Gap): Socket.IO cannot
//     tell a live socket it missed events, so the client reconnects and
//     its recovery reports recovered=false.
//
// Concurrency: per connection, the HTTP handler's goroutine is the reader
// (conn); the engine's writer alone calls the transport's write methods.
package socketio
