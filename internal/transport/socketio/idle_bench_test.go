package socketio_test

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/wstest"
)

// BenchmarkIdleConnection opens 1,000 idle Socket.IO connections, each
// subscribed to its own collection, and reports what the server keeps for
// each one (wstest.IdleCost): stack-B/conn, goroutines/conn and
// heap-B/conn. The clients are raw sockets that did the handshake, the
// CONNECT, the subscribe and a WebSocket ping by hand, so the heap is the
// server's.
func BenchmarkIdleConnection(b *testing.B) {
	n := startNode(b, nil, func(c *nodeConfig) {
		// A logger like the gateway's (text, warn level): what a session's
		// logger keeps shows.
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	h := http.Header{"Authorization": {"Bearer " + wstest.Token(b, "u1", time.Hour, []string{"p"}, nil, nil)}}
	expect := func(c *wstest.RawConn, prefix string) {
		for {
			_, p := c.Read()
			if strings.HasPrefix(string(p), prefix) {
				return
			}
		}
	}
	for range b.N {
		wstest.IdleCost(b, 1000, func(i int) *wstest.RawConn {
			c := wstest.DialRaw(b, n.sioURL(""), h)
			expect(c, "0{") // Engine.IO open
			c.Send("40")
			expect(c, "40{")
			c.Send(`42["subscribe",{"project":"p","collection":"c` + strconv.Itoa(i) + `"}]`)
			expect(c, `42["subscribed"`)
			c.Ping()
			if op, _ := c.Read(); op != 0xa {
				b.Fatalf("opcode %d, want a pong", op)
			}
			c.Idle()
			return c
		}, n.Hub.Connections)
	}
}
