package ws_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wstest"
)

// BenchmarkIdleConnection opens idle subscribed /v1/ws connections (each
// its own collection) and reports what the server keeps for each one,
// measured between all open and all released: goroutine stacks
// (stack-B/conn: the server's reader), goroutines (goroutines/conn) and
// live heap (heap-B/conn). The
// clients are raw sockets that did the handshake and the subscribe by
// hand (and sent a ping), so they keep only their net.Conn (~0.3 KiB):
// the heap is the server's. Half the connections are opened after a collection, as in a
// gateway that has run for a while: the runtime starts new goroutines at
// the average stack it found in use, so a reader parked deep in its read
// makes every later reader start at 4 KiB.
func BenchmarkIdleConnection(b *testing.B) {
	const conns = 1000
	// A logger like the gateway's (text, warn level), not a discarding one:
	// what a session's logger keeps shows.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := wstest.StartNode(b, wstest.NodeConfig{Hub: hub.Config{Logger: logger}})
	u, err := url.Parse(n.URL)
	if err != nil {
		b.Fatal(err)
	}
	tok := wstest.Token(b, "u1", time.Hour, []string{"p"}, nil, nil)
	for range b.N {
		var open, closed runtime.MemStats
		socks := make([]net.Conn, conns)
		for i := range socks {
			if i == conns/2 {
				runtime.GC()
			}
			socks[i] = dialIdle(b, u.Host, tok, i)
		}
		runtime.GC()
		runtime.GC() // a second cycle shrinks the stacks the first found oversized
		runtime.ReadMemStats(&open)
		goroutines := runtime.NumGoroutine()
		for _, nc := range socks {
			_ = nc.Close()
		}
		for n.Hub.Connections() > 0 { // the server side releases them
			time.Sleep(time.Millisecond)
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&closed)
		b.ReportMetric(float64(goroutines-runtime.NumGoroutine())/conns, "goroutines/conn")
		b.ReportMetric(float64(int64(open.StackInuse)-int64(closed.StackInuse))/conns, "stack-B/conn")
		b.ReportMetric(float64(int64(open.HeapAlloc)-int64(closed.HeapAlloc))/conns, "heap-B/conn")
	}
}

// dialIdle opens a /v1/ws connection by hand (RFC 6455 handshake, token in
// the header), subscribes it to collection c<i>, reads ready and
// subscribed, and returns the bare socket.
func dialIdle(b *testing.B, host, token string, i int) net.Conn {
	b.Helper()
	nc, err := net.Dial("tcp", host)
	if err != nil {
		b.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(wstest.Wait))
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Protocol: syncgate.v1\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("upgrade: %v %v", resp, err)
	}
	readServerFrame(b, br) // ready
	msg := []byte(`{"op":"subscribe","id":"s","project":"p","collection":"c` + strconv.Itoa(i) + `"}`)
	frame := []byte{0x81, 0x80 | byte(len(msg)), 1, 2, 3, 4} // masked, len < 126
	for k, c := range msg {
		frame = append(frame, c^frame[2+k&3])
	}
	if _, err := nc.Write(frame); err != nil {
		b.Fatal(err)
	}
	readServerFrame(b, br) // subscribed
	// A ping, as browsers and proxies send them: its pong must leave the
	// server's reader back at its shallow wait, not in a read of its own.
	if _, err := nc.Write([]byte{0x89, 0x80, 1, 2, 3, 4}); err != nil {
		b.Fatal(err)
	}
	readServerFrame(b, br) // pong
	_ = nc.SetDeadline(time.Time{})
	return nc
}

// readServerFrame reads one unmasked server frame.
func readServerFrame(b *testing.B, br *bufio.Reader) []byte {
	b.Helper()
	var h [8]byte
	if _, err := io.ReadFull(br, h[:2]); err != nil {
		b.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		_, _ = io.ReadFull(br, h[:2])
		n = int(binary.BigEndian.Uint16(h[:2]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		b.Fatal(err)
	}
	return p
}
