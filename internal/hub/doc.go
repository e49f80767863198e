// Package hub is syncgate's session engine: every client connection of the
// node, whatever its transport (/v1/ws, /socket.io/, /v1/sse), its
// subscriptions, and the fan-out of backplane events to them. Transports
// (internal/transport/...) only decode their frames into Session calls and
// encode the engine's output behind the small Transport interface
// (transport.go).
//
// Design:
//   - One registry for the node (registry.go): MaxConnections counts every
//     transport together, one Drain closes them all with 1012, /readyz asks
//     Draining.
//   - The backplane calls Hub.Receive once per event per stream; the hub
//     parses the offset once, encodes the event once per Encoding in use
//     (message.go) and appends the same bytes to the bounded queue of every
//     subscribed session, never blocking.
//   - A session's writer (writer.go) owns every write to its Transport. It
//     runs only while there is something to do (queued items, a close, a
//     due heartbeat), so an idle session costs its transport's blocked
//     read and no more; it drains the whole queue at once, one
//     Transport.WriteEvents per run of a subscription's events, then Flush.
//   - A session whose queue exceeds Config.MaxQueueBytes, or whose client
//     reads nothing for WriteTimeout or misses a heartbeat, is closed with
//     4008 (queue.go); nothing is skipped silently.
//   - A subscription (subscription.go, replay.go) is opened with the first
//     page of its history, then replays it a chunk at a time as the client
//     reads (later pages read as the queue has room), buffering live events
//     meanwhile and dropping at the seam what the replay covered: no gap,
//     no duplicate. A backplane Reset, an epoch change or trimmed history is
//     a gap, said as the transport says it (Transport.Gap).
//   - Every session goroutine (writer, timers, history reads, and the
//     transport's reader through Session.Run) runs under the recover
//     boundary guard.Guard: a panic closes that session with 1011.
//   - The subscription index is sharded by stream; each stream's subscriber
//     list is copy-on-write, so fan-out reads it without holding a lock.
//
// Lock order (outer first): backplane locks → shard.mu → Session.mu → Hub.mu
// (register, never with the others held in practice). The engine never calls
// the backplane or a transport's write methods while holding shard.mu or
// Session.mu; Transport.Gap, which only encodes, is called under Session.mu.
package hub
