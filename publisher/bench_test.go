package publisher_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
	"github.com/syncgate/syncgate/publisher"
)

// Publishing throughput, in events/s, through each path:
//
//	go test -run '^$' -bench . -benchtime 3s ./publisher
//
// HTTP goes to an in-process gateway (memory or Redis backplane) over
// loopback; Redis goes straight to redis-server. No client is subscribed.

func benchEvent(i int) syncgate.Event {
	return seqEvent("p1", "rows", 0, i)
}

func reportRate(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func benchBackplanes(b *testing.B, f func(b *testing.B, n *wstest.Node, redisAddr string)) {
	b.Run("memory", func(b *testing.B) { f(b, wstest.StartNode(b, wstest.NodeConfig{}), "") })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		bp, err := backplane.NewRedis(backplane.RedisConfig{URL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		f(b, wstest.StartNode(b, wstest.NodeConfig{Backplane: bp}), srv.Addr())
	})
}

// BenchmarkHTTPSingle: one event per request, one caller at a time.
func BenchmarkHTTPSingle(b *testing.B) {
	benchBackplanes(b, func(b *testing.B, n *wstest.Node, _ string) {
		p, _ := newPublisher(b, n.URL, wstest.Key, nil)
		ctx := context.Background()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := p.Publish(ctx, benchEvent(i)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
	})
}

// BenchmarkHTTPSingleParallel: one event per request, many callers sharing
// the Publisher's keep-alive connections.
func BenchmarkHTTPSingleParallel(b *testing.B) {
	benchBackplanes(b, func(b *testing.B, n *wstest.Node, _ string) {
		p, _ := newPublisher(b, n.URL, wstest.Key, nil)
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := p.Publish(context.Background(), benchEvent(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, b.N)
	})
}

// BenchmarkHTTPBatched: 1,000 events per request (b.N counts events).
func BenchmarkHTTPBatched(b *testing.B) {
	benchBackplanes(b, func(b *testing.B, n *wstest.Node, _ string) {
		p, _ := newPublisher(b, n.URL, wstest.Key, nil)
		benchBatches(b, p, 1000)
	})
}

// BenchmarkBatcher: many callers enqueue single events; the Batcher
// coalesces them.
func BenchmarkBatcher(b *testing.B) {
	benchBackplanes(b, func(b *testing.B, n *wstest.Node, _ string) {
		p, _ := newPublisher(b, n.URL, wstest.Key, nil)
		bt := p.NewBatcher(publisher.BatcherConfig{})
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if err := bt.Enqueue(context.Background(), benchEvent(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		if err := bt.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		reportRate(b, b.N)
	})
}

// BenchmarkRedisDirect: straight into Redis, one event per call and 1,000.
func BenchmarkRedisDirect(b *testing.B) {
	srv := redistest.Start(b)
	p := newRedisPublisher(b, redisClient(b, srv.Addr(), nil))
	b.Run("single", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := p.Publish(ctx, benchEvent(i)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
	})
	b.Run("batched", func(b *testing.B) { benchBatches(b, p, 1000) })
}

func benchBatches(b *testing.B, p *publisher.Publisher, size int) {
	batch := make([]syncgate.Event, size)
	for i := range batch {
		batch[i] = benchEvent(i)
	}
	b.ReportAllocs()
	sent := 0
	for b.Loop() {
		if _, err := p.Publish(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
		sent += size
	}
	reportRate(b, sent)
}
