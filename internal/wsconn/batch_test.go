package wsconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countConn counts the writes that reach the socket.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// SyscallConn hands out the socket's raw connection, its writes counted
// too, so that flushes take the path they take on a real socket.
func (c *countConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.Conn.(syscall.Conn).SyscallConn()
	return countRaw{RawConn: rc, writes: &c.writes}, err
}

// countRaw counts the raw writes of a countConn.
type countRaw struct {
	syscall.RawConn
	writes *atomic.Int64
}

func (r countRaw) Write(f func(fd uintptr) bool) error {
	r.writes.Add(1)
	return r.RawConn.Write(f)
}

// pair accepts one WebSocket with Accept and dials it; the server side's
// writes are counted. Both ends are released when the test ends.
func pair(tb testing.TB) (*Socket, *countConn, *websocket.Conn) {
	tb.Helper()
	socks := make(chan *Socket, 1)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := Accept(w, r, Config{StallLimit: 5 * time.Second})
		if err != nil {
			tb.Error(err)
			return
		}
		socks <- s
		<-done
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, srv.URL, nil)
	if err != nil {
		tb.Fatal(err)
	}
	client.SetReadLimit(1 << 20)
	s := <-socks
	cc := &countConn{Conn: s.out.Conn}
	s.out.Conn = cc
	tb.Cleanup(func() {
		s.Finish()
		_ = client.CloseNow()
		close(done)
		srv.Close()
	})
	return s, cc, client
}

func readText(t *testing.T, c *websocket.Conn) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	return string(b), err
}

// TestSocketBatchesUntilFlush: messages written reach the kernel only at
// Flush, all in one write, in order; a close sends what is held first.
func TestSocketBatchesUntilFlush(t *testing.T) {
	s, cc, client := pair(t)
	for i := range 5 {
		if err := s.Write([]byte(fmt.Sprintf("m%d", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := cc.writes.Load(); n != 0 {
		t.Fatalf("%d socket writes before Flush, want 0", n)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load(); n != 1 {
		t.Fatalf("%d socket writes for a batch of 5 messages, want 1", n)
	}
	for i := range 5 {
		got, err := readText(t, client)
		if want := fmt.Sprintf("m%d", i); err != nil || got != want {
			t.Fatalf("message %d: %q, %v; want %q", i, got, err, want)
		}
	}

	// A message larger than a fragment, then a close: all of it arrives,
	// then the close frame.
	big := strings.Repeat("x", 3*fragmentSize+7)
	if err := s.Write([]byte("last"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Write([]byte(big), nil); err != nil {
		t.Fatal(err)
	}
	go s.Close(int(websocket.StatusNormalClosure), "bye")
	if got, err := readText(t, client); err != nil || got != "last" {
		t.Fatalf("got %q, %v; want \"last\"", got, err)
	}
	if got, err := readText(t, client); err != nil || got != big {
		t.Fatalf("got %d bytes, %v; want %d", len(got), err, len(big))
	}
	if _, err := readText(t, client); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after the messages: %v, want close 1000", err)
	}
}

// TestSocketBatchBound: a batch hands the kernel what it holds once it
// passes maxHeld, without waiting for Flush.
func TestSocketBatchBound(t *testing.T) {
	s, cc, client := pair(t)
	msg := []byte(strings.Repeat("y", 1000))
	n := maxHeld/len(msg) + 1
	go func() { // the client reads so the send buffer keeps room
		for range n {
			if _, err := readText(t, client); err != nil {
				return
			}
		}
	}()
	for range n {
		if err := s.Write(msg, nil); err != nil {
			t.Fatal(err)
		}
	}
	if w := cc.writes.Load(); w == 0 {
		t.Fatalf("%d bytes held without a socket write, bound %d", n*len(msg), maxHeld)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.out.held != nil {
		t.Fatal("a buffer is still held after Flush")
	}
}

// BenchmarkSocketBatch writes batches of 1, 10 and 100 messages of 200
// bytes with one Flush each to a reading peer: ns/message and socket
// writes per batch (1 since the batching writer; one per message before).
func BenchmarkSocketBatch(b *testing.B) {
	for _, per := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("messages=%d", per), func(b *testing.B) {
			s, cc, client := pair(b)
			go func() {
				for {
					if _, _, err := client.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			msg := []byte(strings.Repeat("z", 200))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for range per {
					if err := s.Write(msg, nil); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/message")
			b.ReportMetric(float64(cc.writes.Load())/float64(b.N), "writes/batch")
		})
	}
}

// tcpPair is a loopback TCP connection: the server end and the client end.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

// TestBatchFlushInOrder: batches larger than the socket takes at once
// (the kernel's send buffer fills, writeNoWait stops and the rest goes
// with a deadline) reach the peer whole and in order.
func TestBatchFlushInOrder(t *testing.T) {
	server, client := tcpPair(t)
	// Small buffers: a batch of 100 KB never fits at once.
	if err := server.(*net.TCPConn).SetWriteBuffer(8 << 10); err != nil {
		t.Fatal(err)
	}
	if err := client.(*net.TCPConn).SetReadBuffer(8 << 10); err != nil {
		t.Fatal(err)
	}
	c := &batchConn{Conn: server, stall: 10 * time.Second}
	const total = 256 << 10
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 0, total)
		buf := make([]byte, 1500) // small reads: the sender meets a full buffer
		for len(b) < total {
			n, err := client.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- b
	}()
	want := make([]byte, 0, total)
	chunk := make([]byte, 1000)
	for i := 0; len(want) < total; i++ {
		c.begin()
		for j := 0; j < 100 && len(want) < total; j++ {
			for k := range chunk {
				chunk[k] = byte(i*131 + j*7 + k)
			}
			p := chunk[:min(len(chunk), total-len(want))]
			if err := c.writeFrame(p, nil); err != nil {
				t.Fatal(err)
			}
			want = append(want, p...)
		}
		if err := c.end(); err != nil {
			t.Fatal(err)
		}
	}
	b := <-got
	if !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, want %d, equal %v", len(b), len(want), bytes.Equal(b[:min(len(b), len(want))], want[:min(len(b), len(want))]))
	}
}

// TestBatchFlushStalls: a flush to a peer that reads nothing ends with the
// deadline error once the send buffer is full, after stall.
func TestBatchFlushStalls(t *testing.T) {
	server, _ := tcpPair(t)
	c := &batchConn{Conn: server, stall: 100 * time.Millisecond}
	c.begin()
	big := make([]byte, maxHeld-1)
	var err error
	for i := 0; i < 1000 && err == nil; i++ { // at most 64 MiB: far past any socket buffer
		if err = c.writeFrame(big, nil); err == nil {
			err = c.flush()
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("flush to a peer that reads nothing: %v, want the deadline error", err)
	}
}

// BenchmarkBatchFlush hands the kernel one 600-byte batch per op, as a
// fan-out writer does per connection: "nowait" is the flush as it is
// (writeNoWait, no deadline while the kernel takes it all), "deadline"
// the bounded write every flush made before (SetWriteDeadline, write,
// clear), in the same run.
func BenchmarkBatchFlush(b *testing.B) {
	for _, mode := range []string{"nowait", "deadline"} {
		b.Run(mode, func(b *testing.B) {
			server, client := tcpPair(b)
			go func() {
				_, _ = io.Copy(io.Discard, client)
			}()
			c := &batchConn{Conn: server, stall: 10 * time.Second}
			if mode == "deadline" {
				c.rawOf = server // raw stays nil: every flush takes the deadline path
			}
			msg := make([]byte, 600)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.begin()
				if err := c.writeFrame(msg, nil); err != nil {
					b.Fatal(err)
				}
				if err := c.end(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
