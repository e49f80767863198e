package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/capture/postgres"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/pgtest"
)

// BenchmarkCaptureRows measures the capture in this process (reader,
// decoder and publisher, on the in-memory backplane) following inserts of
// 100 rows a transaction: CPU and allocations per row captured. The reader
// waits on a read deadline, not a context per received message (whose
// timer and context.AfterFunc in pgconn were a tenth of the gateway's CPU
// at 10,000 rows/s), which the allocations per row guard.
func BenchmarkCaptureRows(b *testing.B) {
	pg := pgtest.Start(b)
	sql := db(b, pg.URL())
	exec(b, sql, `CREATE TABLE rows (id bigint PRIMARY KEY, pad text)`)
	rec := &counter{notify: make(chan struct{}, 1)}
	bp := backplane.NewMemory(backplane.MemoryConfig{HistorySize: 1000})
	if err := bp.Start(context.Background(), rec); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bp.Close() })
	c, err := postgres.New(postgres.Config{URL: pg.URL(), Logger: testLogger(), Metrics: metrics.New()}, bp)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	awaitActive(b, c, true)
	// The table was created before the slot: only its rows are captured.
	next := 0
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; {
		n := min(left, 100)
		exec(b, sql, `INSERT INTO rows SELECT g, 'x' FROM generate_series($1::bigint, $2::bigint) g`, next+1, next+n)
		next += n
		left -= n
	}
	rec.await(b, b.N)
	b.StopTimer()
}

// counter counts the events delivered on collection streams.
type counter struct {
	mu     sync.Mutex
	n      int
	notify chan struct{}
}

func (c *counter) Receive(s backplane.Stream, _ backplane.Offset, _ *syncgate.Event) {
	if s.Collection == syncgate.AllCollections {
		return
	}
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *counter) Reset(backplane.Stream, backplane.Offset) {}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// await returns once n events arrived, failing after two minutes.
func (c *counter) await(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for c.count() < n {
		select {
		case <-c.notify:
		case <-deadline.C:
			tb.Fatalf("%d events within 2 minutes, want %d", c.count(), n)
		}
	}
}
