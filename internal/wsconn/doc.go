// Package wsconn is the server side of WebSocket (RFC 6455) for every
// WebSocket transport of syncgate (/v1/ws and /socket.io/), and what they
// do the same way with an accepted socket:
//
//   - Accept checks the upgrade (method, headers, version, key, origin),
//     selects the subprotocol and answers 101 on the hijacked connection
//     itself (accept.go). No extension is negotiated.
//   - Read returns the client's messages: it unmasks, reassembles
//     fragments, answers pings, hands pongs to Ping, enforces the read
//     limit (1009) and UTF-8 for text (1007), refuses frames that break
//     the protocol (1002), and answers the client's close (frame.go). An
//     idle socket holds no buffer: its frames are read straight from the
//     connection.
//   - Socket.Write never starts writing what the kernel's send buffer
//     cannot take, so a close frame can always follow (socket.go, room_*.go):
//     a client that stops reading gets close 4008 it can read when it
//     resumes, never a frame cut in half by a write deadline. Writes are
//     gathered into one write(2) per batch (batch.go).
//   - Every close the server makes is counted once, by code, in
//     syncgate_disconnects_total (Socket.Close, Socket.Cut, Socket.Finish).
//
// The recover boundary of connection goroutines and the write errors the
// engine knows (ErrStalled, ErrAborted) live in internal/guard, so the
// engine does not import this package.
//
// The tests and cmd/loadgen use github.com/coder/websocket as the client,
// so every exchange is checked against an independent implementation.
//
// Concurrency: one goroutine reads (Read); one goroutine at a time writes
// messages with Socket.Write (the transport's writer); Ping, Close, Cut and
// Finish are safe from any goroutine.
package wsconn
