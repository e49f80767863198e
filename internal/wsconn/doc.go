// Package wsconn holds what every WebSocket transport of syncgate (/v1/ws
// and /socket.io/) does the same way with an accepted socket:
//
//   - Accept upgrades with a small read buffer and keeps the raw TCP
//     connection (hijack.go).
//   - Socket.Write never starts writing what the kernel's send buffer
//     cannot take, so a close frame can always follow (socket.go, room_*.go):
//     a client that stops reading gets close 4008 it can read when it
//     resumes, never a frame cut in half by a write deadline.
//   - Every close the server makes is counted once, by code, in
//     syncgate_disconnects_total (Socket.Close, Socket.Cut, Socket.Finish).
//   - Guard is the recover boundary around every connection goroutine: a
//     panic closes that connection with 1011, is logged once with its stack
//     and counted in syncgate_panics_total{transport}; the process lives on
//     (guard.go).
//
// Concurrency: one goroutine at a time writes messages with Socket.Write
// (the transport's writer); Close, Cut and Finish are safe from any
// goroutine. Guard is safe for concurrent use.
package wsconn
