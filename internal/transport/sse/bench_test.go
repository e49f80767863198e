package sse_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/wstest"
)

// BenchmarkIdleStreams opens idle streams (one subscription each) and
// reports what each costs the process, client side included: heap bytes
// and goroutines.
func BenchmarkIdleStreams(b *testing.B) {
	const streams = 200
	n := wstest.StartNode(b, wstest.NodeConfig{})
	tok := token(b, time.Hour, "demo")
	u := sseURL(n.URL, []string{"demo/todos"}, nil)
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		var open []*stream
		for range streams {
			s := openStream(b, u, bearer(tok))
			s.subscribed()
			open = append(open, s)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/streams, "heap-B/stream") // server and client
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/streams, "goroutines/stream")
		for _, s := range open {
			s.close()
		}
		n.AwaitReleased(b, n.Hub.Connections)
	}
}

// BenchmarkDelivery publishes batches of events to one stream and reads
// them as curl does: events per second through the transport.
func BenchmarkDelivery(b *testing.B) {
	n := wstest.StartNode(b, wstest.NodeConfig{})
	s := openStream(b, sseURL(n.URL, []string{"demo/todos"}, nil), bearer(token(b, time.Hour, "demo")))
	s.subscribed()
	b.ReportAllocs()
	b.ResetTimer()
	got := 0
	for i := 0; i < b.N; i += 100 {
		publishSeq(b, n, "demo", "todos", i, i+99)
		for target := got + 100; got < target; {
			got += len(parseEvents(b, s.next()).Events)
		}
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "events/s")
}
