package redisfn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/redisfn"
	"github.com/syncgate/syncgate/internal/redistest"
)

// BenchmarkPublish measures one syncgate_publish_encoded (or, with at,
// syncgate_publish_at) call of n events of ~200 bytes on a real Redis,
// reporting the Redis-side cost per event: what bounds every publish path
// (HTTP batches, change capture) on one Redis.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := redisfn.Load(ctx, rdb, redisfn.Limits{HistorySize: 1000, HistoryTTL: time.Hour}, redisfn.OwnerGateway, true); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{100, 1000} {
		for _, at := range []bool{false, true} {
			b.Run(fmt.Sprintf("events=%d/at=%v", n, at), func(b *testing.B) {
				evs := make([]syncgate.Event, n)
				for i := range evs {
					doc, _ := json.Marshal(map[string]any{"id": i, "title": "a row of about two hundred bytes", "n": i, "tags": []string{"x", "y"}})
					evs[i] = syncgate.Event{Type: "document:updated", Project: "bench", Collection: "rows", DocumentID: strconv.Itoa(i), Document: doc}
				}
				enc, err := redisfn.Encode(evs, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var a *redisfn.At
					if at {
						a = &redisfn.At{Source: "bench", Positions: make([]string, n)}
						for j := range a.Positions {
							a.Positions[j] = fmt.Sprintf("%016X%08X", uint64(i+1), j)
						}
					}
					if _, err := redisfn.Publish(ctx, rdb, enc, a, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
			})
		}
	}
}

// BenchmarkPublishLongHistory measures small syncgate_publish_at calls (10
// events, as change capture makes at a steady rate) into streams that hold
// a long history (100,000 entries, within the TTL): a call's cost must not
// grow with the history it keeps. Library version 4 walked both streams on
// every call to find entries older than the TTL (36 ms a call here);
// version 5 looks forwards first.
func BenchmarkPublishLongHistory(b *testing.B) {
	const size, n = 100000, 10
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := redisfn.Load(ctx, rdb, redisfn.Limits{HistorySize: size, HistoryTTL: time.Hour}, redisfn.OwnerGateway, true); err != nil {
		b.Fatal(err)
	}
	seq := 0
	publish := func(k int) {
		evs := make([]syncgate.Event, k)
		at := &redisfn.At{Source: "bench", Positions: make([]string, k)}
		for i := range evs {
			seq++
			evs[i] = syncgate.Event{Type: "insert", Project: "bench", Collection: "rows", DocumentID: strconv.Itoa(seq), Document: json.RawMessage(`{"id":` + strconv.Itoa(seq) + `,"pad":"x"}`)}
			at.Positions[i] = fmt.Sprintf("%016X%08X", uint64(seq), 0)
		}
		enc, err := redisfn.Encode(evs, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := redisfn.Publish(ctx, rdb, enc, at, nil); err != nil {
			b.Fatal(err)
		}
	}
	for seq < size {
		publish(1000)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		publish(n)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/call")
}
