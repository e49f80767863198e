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
// Design (the same properties as internal/hub):
//   - The Server is a backplane.Receiver. It encodes an event once per node
//     and subscription kind, and appends the same bytes to the bounded
//     queue of every subscribed connection, never blocking.
//   - Each connection has two goroutines: the reader (the HTTP handler) and
//     one writer that owns every socket write, the Engine.IO heartbeat and
//     the recovery state it appends to each event.
//   - A connection whose queue exceeds Config.MaxQueueBytes, or whose client
//     reads nothing for WriteTimeout, is closed with 4008; the client
//     reconnects and recovers. Nothing is skipped silently, and the close
//     frame always reaches the client (wsconn.Socket.Write).
//   - Every connection goroutine runs under the recover boundary
//     wsconn.Guard (close 1011, deferred teardown); after 3 failed CONNECTs
//     a connection is closed with 4001.
//   - Recovery replay is pulled by the writer a chunk at a time (up to half
//     the queue bound) as the client reads it, so a client that missed more
//     than the bound catches up instead of being cut again; the reader goes
//     on reading meanwhile. Live events that arrive during a replay wait in
//     a pending buffer (bounded in events and, with the queue, in bytes) and
//     are de-duplicated by offset at the seam.
//   - A backplane Reset closes with 1012 every connection whose subscription
//     has not passed the Reset's head; one arriving during a replay is
//     applied when the replay ends.
//   - The subscription index is sharded by stream with copy-on-write
//     subscriber slices.
//
// Lock order (outer first): backplane locks → shard.mu → conn.mu. Nothing is
// called on the backplane or the socket while shard.mu or conn.mu is held.
package socketio
