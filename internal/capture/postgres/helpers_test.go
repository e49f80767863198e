package postgres_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/capture/postgres"
	"github.com/syncgate/syncgate/internal/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder keeps the events delivered on collection streams.
type recorder struct {
	mu     sync.Mutex
	events []syncgate.Event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Receive(s backplane.Stream, _ backplane.Offset, ev *syncgate.Event) {
	if s.Collection == syncgate.AllCollections {
		return
	}
	r.mu.Lock()
	r.events = append(r.events, *ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) Reset(backplane.Stream, backplane.Offset) {}

func (r *recorder) get() []syncgate.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]syncgate.Event(nil), r.events...)
}

// wait returns once at least n events arrived, failing after d.
func (r *recorder) wait(t testing.TB, n int, d time.Duration) []syncgate.Event {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if evs := r.get(); len(evs) >= n {
			return evs
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			evs := r.get()
			t.Fatalf("got %d events within %s, want %d: %s", len(evs), d, n, dump(evs))
		}
	}
}

func dump(evs []syncgate.Event) string {
	b, _ := json.MarshalIndent(evs, "", " ")
	if len(b) > 4000 {
		b = append(b[:4000], "…"...)
	}
	return string(b)
}

func testLogger() *slog.Logger {
	if os.Getenv("CAPTURE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type running struct {
	cap *postgres.Capture
	bp  *backplane.Memory
	rec *recorder
	m   *metrics.Metrics
}

// startCapture runs a Capture on a Memory backplane until the test ends.
func startCapture(t *testing.T, url string, tune func(*postgres.Config)) *running {
	t.Helper()
	rec := newRecorder()
	bp := backplane.NewMemory(backplane.MemoryConfig{HistorySize: 100_000})
	if err := bp.Start(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	cfg := postgres.Config{URL: url, Logger: testLogger(), Metrics: m}
	if tune != nil {
		tune(&cfg)
	}
	c, err := postgres.New(cfg, bp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = bp.Close()
	})
	awaitActive(t, c, true)
	return &running{cap: c, bp: bp, rec: rec, m: m}
}

func awaitActive(t testing.TB, c *postgres.Capture, want bool) {
	t.Helper()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		on, changed := c.Active()
		if on == want {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("capture active=%v, want %v within 60s", on, want)
		}
	}
}

// db opens a connection for the test's SQL.
func db(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func exec(t testing.TB, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
