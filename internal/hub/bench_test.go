package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
)

type nopVerifier struct{}

func (nopVerifier) Verify(context.Context, string) (*auth.Claims, error) { return nil, nil }

// BenchmarkFanout measures Hub.Receive of one event to n local subscribers:
// one encode, then n enqueues (on the hub's fan-out goroutine).
// ns/delivery and allocs/delivery are the figures of interest; the writers
// are not running.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h, err := New(Config{Verifier: nopVerifier{}, Logger: slog.New(slog.DiscardHandler)}, backplane.NewMemory(backplane.MemoryConfig{}))
			if err != nil {
				b.Fatal(err)
			}
			s := backplane.Stream{Project: "p", Collection: "c"}
			claims := &auth.Claims{Subject: "u", Projects: []string{"p"}}
			conns := make([]*Session, n)
			for i := range conns {
				c := &Session{h: h, claims: claims}
				sub := &Subscription{sess: c, key: SubKey{Stream: s}, state: subLive, last: backplane.Offset{Epoch: "e"}}
				h.shard(s).add(sub)
				conns[i] = c
			}
			ev := syncgate.Event{Type: "document:updated", Project: "p", Collection: "c", DocumentID: "d1",
				Document: json.RawMessage(`{"title":"Launch","done":false}`)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := backplane.Offset{Epoch: "e", Hi: uint64(i + 1)}
				ev.Offset = off.String()
				h.Receive(s, off, &ev)
				if i%64 == 63 { // what the writers would do: take the queues
					h.Delivered(context.Background())
					b.StopTimer()
					for _, c := range conns {
						clear(c.queue)
						c.queue, c.queued = c.queue[:0], 0
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkReceiveCaller measures what Hub.Receive costs its caller (the
// backplane's delivery loop, or a publishing request on the memory
// backplane) for one event to 10,000 subscribers: the encode and a queue
// send, the fan-out itself left to the hub's goroutine (ns/op; about
// 10,000 × ns/delivery of BenchmarkFanout before the fan-out queue).
func BenchmarkReceiveCaller(b *testing.B) {
	const n = 10000
	h, err := New(Config{Verifier: nopVerifier{}, Logger: slog.New(slog.DiscardHandler)}, backplane.NewMemory(backplane.MemoryConfig{}))
	if err != nil {
		b.Fatal(err)
	}
	s := backplane.Stream{Project: "p", Collection: "c"}
	claims := &auth.Claims{Subject: "u", Projects: []string{"p"}}
	conns := make([]*Session, n)
	for i := range conns {
		c := &Session{h: h, claims: claims}
		h.shard(s).add(&Subscription{sess: c, key: SubKey{Stream: s}, state: subLive, last: backplane.Offset{Epoch: "e"}})
		conns[i] = c
	}
	ev := syncgate.Event{Type: "document:updated", Project: "p", Collection: "c", DocumentID: "d1",
		Document: json.RawMessage(`{"title":"Launch","done":false}`)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := backplane.Offset{Epoch: "e", Hi: uint64(i + 1)}
		ev.Offset = off.String()
		h.Receive(s, off, &ev)
		if i%16 == 15 {
			b.StopTimer()
			h.Delivered(context.Background())
			for _, c := range conns {
				clear(c.queue)
				c.queue, c.queued = c.queue[:0], 0
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	h.Delivered(context.Background())
}
