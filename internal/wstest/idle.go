package wstest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"testing"
	"time"
)

// RawConn is a client WebSocket kept as bare as it gets: the handshake and
// the frames are done by hand over the TCP connection, so an idle RawConn
// holds only its net.Conn (~0.3 KiB) and costs the test process next to
// nothing; what an idle connection costs the server is then what the heap
// and the stacks grew by.
type RawConn struct {
	tb testing.TB
	nc net.Conn
	br *bufio.Reader // dropped by Idle
}

// DialRaw opens a WebSocket to wsURL (ws://host/path?query) with header,
// by hand (RFC 6455 handshake, no extension), and fails the test unless
// the server answers 101.
func DialRaw(tb testing.TB, wsURL string, header http.Header) *RawConn {
	tb.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		tb.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		tb.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(Wait))
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for k, vs := range header {
		for _, v := range vs {
			req += k + ": " + v + "\r\n"
		}
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade to %s: %v %v", wsURL, resp, err)
	}
	return &RawConn{tb: tb, nc: nc, br: br}
}

// Send sends text as one masked text frame.
func (c *RawConn) Send(text string) { c.frame(0x1, []byte(text)) }

// Ping sends a ping; its pong arrives as a frame with opcode 0xa.
func (c *RawConn) Ping() { c.frame(0x9, nil) }

func (c *RawConn) frame(op byte, payload []byte) {
	c.tb.Helper()
	key := [4]byte{0x5d, 0x13, 0xa7, 0x42}
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	}
	b = append(b, key[:]...)
	for i, x := range payload {
		b = append(b, x^key[i&3])
	}
	if _, err := c.nc.Write(b); err != nil {
		c.tb.Fatal(err)
	}
}

// Read reads one server frame (unmasked, unfragmented): its opcode and
// payload.
func (c *RawConn) Read() (op byte, payload []byte) {
	c.tb.Helper()
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		c.tb.Fatal(err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		_, _ = io.ReadFull(c.br, h[:2])
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		_, _ = io.ReadFull(c.br, h[:8])
		n = binary.BigEndian.Uint64(h[:8])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		c.tb.Fatal(err)
	}
	return h[0] & 0x0f, payload
}

// Idle drops everything but the socket, once the server sends nothing
// more until the client does.
func (c *RawConn) Idle() {
	_ = c.nc.SetDeadline(time.Time{})
	c.br = nil
}

// Close closes the socket.
func (c *RawConn) Close() { _ = c.nc.Close() }

// IdleCost opens conns connections with dial (which leaves each idle),
// half of them after a collection, as in a gateway that has run for a
// while (the runtime starts new goroutines at the average stack it found
// in use), then closes them all, waits until connections() is 0, and
// reports what each one cost between all open and all released:
// stack-B/conn, goroutines/conn and heap-B/conn.
func IdleCost(b *testing.B, conns int, dial func(i int) *RawConn, connections func() int) {
	b.Helper()
	var open, closed runtime.MemStats
	socks := make([]*RawConn, conns)
	for i := range socks {
		if i == conns/2 {
			runtime.GC()
		}
		socks[i] = dial(i)
	}
	runtime.GC()
	runtime.GC() // a second cycle shrinks the stacks the first found oversized
	runtime.ReadMemStats(&open)
	goroutines := runtime.NumGoroutine()
	for _, c := range socks {
		c.Close()
	}
	for connections() > 0 { // the server side releases them
		time.Sleep(time.Millisecond)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&closed)
	b.ReportMetric(float64(goroutines-runtime.NumGoroutine())/float64(conns), "goroutines/conn")
	b.ReportMetric(float64(int64(open.StackInuse)-int64(closed.StackInuse))/float64(conns), "stack-B/conn")
	b.ReportMetric(float64(int64(open.HeapAlloc)-int64(closed.HeapAlloc))/float64(conns), "heap-B/conn")
}
