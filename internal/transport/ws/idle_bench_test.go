package ws_test

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wstest"
)

// BenchmarkIdleConnection opens 1,000 idle subscribed /v1/ws connections
// (each its own collection) and reports what the server keeps for each
// one (wstest.IdleCost): goroutine stacks (stack-B/conn: the server's
// reader), goroutines (goroutines/conn) and live heap (heap-B/conn). The
// clients are raw sockets that did the handshake, the subscribe and a
// ping by hand, so the heap is the server's: the ping's pong must leave
// the server's reader back at its shallow wait, not in a read of its own.
func BenchmarkIdleConnection(b *testing.B) {
	// A logger like the gateway's (text, warn level), not a discarding one:
	// what a session's logger keeps shows.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := wstest.StartNode(b, wstest.NodeConfig{Hub: hub.Config{Logger: logger}})
	h := http.Header{
		"Authorization":          {"Bearer " + wstest.Token(b, "u1", time.Hour, []string{"p"}, nil, nil)},
		"Sec-Websocket-Protocol": {"syncgate.v1"},
	}
	for range b.N {
		wstest.IdleCost(b, 1000, func(i int) *wstest.RawConn {
			c := wstest.DialRaw(b, n.WSURL(), h)
			c.Read() // ready
			c.Send(`{"op":"subscribe","id":"s","project":"p","collection":"c` + strconv.Itoa(i) + `"}`)
			c.Read() // subscribed
			c.Ping()
			if op, _ := c.Read(); op != 0xa {
				b.Fatalf("opcode %d, want a pong", op)
			}
			c.Idle()
			return c
		}, n.Hub.Connections)
	}
}
