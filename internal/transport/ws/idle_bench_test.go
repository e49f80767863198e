package ws_test

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/wstest"
)

// BenchmarkIdleConnection opens idle subscribed /v1/ws connections (each
// its own collection) and reports what each one costs, measured between
// all open and all released: goroutine stacks (stack-B/conn: the server's
// reader; the benchmark's client keeps no goroutine) and live heap
// (heap-B/conn, both ends). The server's reader handles messages with Session.Handle, so its
// blocked Read keeps a small stack.
func BenchmarkIdleConnection(b *testing.B) {
	const conns = 300
	n := wstest.StartNode(b, wstest.NodeConfig{})
	h := http.Header{}
	h.Set("Authorization", "Bearer "+wstest.Token(b, "u1", time.Hour, []string{"p"}, nil, nil))
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	read := func(ws *websocket.Conn) {
		if _, _, err := ws.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		var open, closed runtime.MemStats
		socks := make([]*websocket.Conn, conns)
		for i := range socks {
			ws, _, err := websocket.Dial(ctx, n.WSURL(), &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"syncgate.v1"}})
			if err != nil {
				b.Fatal(err)
			}
			read(ws) // ready
			msg := `{"op":"subscribe","id":"s","project":"p","collection":"c` + strconv.Itoa(i) + `"}`
			if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				b.Fatal(err)
			}
			read(ws) // subscribed
			socks[i] = ws
		}
		runtime.GC()
		runtime.GC() // a second cycle shrinks the stacks the first found oversized
		runtime.ReadMemStats(&open)
		for _, ws := range socks {
			_ = ws.CloseNow()
		}
		for n.Hub.Connections() > 0 { // the server side releases them
			time.Sleep(time.Millisecond)
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&closed)
		b.ReportMetric(float64(int64(open.StackInuse)-int64(closed.StackInuse))/conns, "stack-B/conn")
		b.ReportMetric(float64(int64(open.HeapAlloc)-int64(closed.HeapAlloc))/conns, "heap-B/conn")
	}
}
