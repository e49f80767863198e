package wsconn

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
