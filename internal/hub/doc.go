// Package hub holds client connections, their subscriptions, and the fan-out
// of backplane events to them.
//
// Design:
//   - The backplane calls Hub.Receive once per event per stream; the hub
//     encodes the event once and appends the same bytes to the bounded
//     outbound queue of every subscribed connection (no per-delivery
//     allocation, never blocking).
//   - Each connection has two goroutines: its reader (the HTTP handler) and
//     one writer that owns all socket writes. The writer drains the whole
//     queue at once and writes one `events` frame per subscription.
//   - A connection whose queue exceeds Config.MaxQueueBytes, or whose client
//     reads nothing for WriteTimeout, is closed with 4008; nothing is skipped
//     silently, and the close frame always reaches the client
//     (wsconn.Socket.Write never starts a frame the send buffer cannot take).
//   - Every connection goroutine (reader, writer, timers) runs under the
//     recover boundary wsconn.Guard: a panic closes that connection with
//     1011 and teardown releases it; the process lives on.
//   - The subscription index is sharded by stream; each stream's subscriber
//     list is copy-on-write, so fan-out reads it without holding a lock.
//
// Lock order (outer first): backplane locks → shard.mu → conn.mu. The hub never
// calls the backplane or the socket while holding shard.mu or conn.mu.
package hub
