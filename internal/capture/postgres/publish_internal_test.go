package postgres

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
)

// callRecorder is a Publisher that records the events of each call.
type callRecorder struct {
	mu    sync.Mutex
	calls [][]string // documentIds per call
	done  chan struct{}
	want  int // close done once this many events arrived
	n     int
	once  sync.Once
}

func (r *callRecorder) PublishAt(_ context.Context, _ string, events []syncgate.Event, _ []string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, ev := range events {
		ids = append(ids, ev.DocumentID)
	}
	r.calls = append(r.calls, ids)
	if r.n += len(events); r.n >= r.want {
		r.once.Do(func() { close(r.done) })
	}
	return make([]string, len(events)), nil
}

// rowTx is a committed transaction of one insert, ending at LSN end.
func rowTx(end int) *txn {
	return &txn{
		end: pglogrepl.LSN(end), commitTime: time.Now(),
		events: []syncgate.Event{{Type: syncgate.TypeInsert, Project: "p", Collection: "c", DocumentID: strconv.Itoa(end)}},
		kinds:  []string{"insert"},
	}
}

// startPublisher runs a stream's publisher stage alone on pub, with a
// hand-over queue of queue transactions; stop ends it and waits for it.
func startPublisher(cfg Config, pub Publisher, queue int) (s *stream, stop func()) {
	c := &Capture{cfg: cfg, pub: pub, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s = &stream{c: c, txs: make(chan *txn, queue), source: "test"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.publish(ctx)
	}()
	return s, func() {
		cancel()
		wg.Wait()
	}
}

// TestPublishMergesWithinDelay: a transaction handed over while the one
// before waits out BatchDelay shares its call (up to MaxBatch events);
// with no delay each goes out as soon as the publisher takes it.
func TestPublishMergesWithinDelay(t *testing.T) {
	for _, c := range []struct {
		name  string
		delay time.Duration
		want  string
	}{
		{"delay", time.Hour, "[[1 2 3]]"}, // MaxBatch 3 ends the wait, not the hour; the fourth waits on
		{"none", -1, "[1] [2] [3] [4]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &callRecorder{done: make(chan struct{}), want: 4}
			s, stop := startPublisher(Config{MaxBatch: 3, BatchDelay: c.delay}, rec, 4)
			defer stop()
			// Each is handed over once the publisher holds the one before
			// (the queue is empty): only waiting can merge them.
			for end := 1; end <= 4; end++ {
				s.txs <- rowTx(end)
				for len(s.txs) > 0 {
					time.Sleep(time.Millisecond)
				}
				if c.delay < 0 {
					// Without a delay a call may merge only what waited:
					// wait for this one's call before handing the next.
					for pglogrepl.LSN(s.published.Load()) != pglogrepl.LSN(end) {
						time.Sleep(time.Millisecond)
					}
				}
			}
			if c.delay > 0 {
				// The fourth waits out its hour: end the wait by stopping.
				for {
					rec.mu.Lock()
					n := len(rec.calls)
					rec.mu.Unlock()
					if n == 1 {
						break
					}
					time.Sleep(time.Millisecond)
				}
				rec.mu.Lock()
				got := fmt.Sprint(rec.calls)
				rec.mu.Unlock()
				if got != c.want {
					t.Fatalf("calls %s, want %s before the fourth's delay ends", got, c.want)
				}
				return
			}
			<-rec.done
			rec.mu.Lock()
			got := strings.Trim(fmt.Sprint(rec.calls), "[]")
			rec.mu.Unlock()
			if want := strings.Trim(c.want, "[]"); got != want {
				t.Fatalf("calls [%s], want [%s]", got, want)
			}
		})
	}
}

// BenchmarkPublishStage measures the publisher stage against a real
// redis-server: single-row transactions handed over one at a time at about
// 5,000 a second, as the reader does at 5,000 single-row transactions/s,
// with and without BatchDelay. It reports the rows per publish call and
// Redis's CPU per row: without the delay the publisher makes a call per
// transaction or two, and Redis's fixed share of each call dominates.
func BenchmarkPublishStage(b *testing.B) {
	srv := redistest.Start(b)
	bp, err := backplane.NewRedis(backplane.RedisConfig{URL: srv.URL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := bp.Start(context.Background(), nopReceiver{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bp.Close() })
	end := 0
	for _, delay := range []time.Duration{-1, 5 * time.Millisecond} {
		b.Run("delay="+delay.String(), func(b *testing.B) {
			counter := &countingPublisher{pub: bp}
			s, stop := startPublisher(Config{MaxBatch: 1000, BatchDelay: delay}, counter, queueTxs)
			cpu0 := procSeconds(b, srv.PID())
			b.ResetTimer()
			tick := time.NewTicker(time.Millisecond)
			for i := 0; i < b.N; {
				<-tick.C
				for k := 0; k < 5 && i < b.N; k++ { // 5 a millisecond
					end++
					s.txs <- rowTx(end)
					i++
				}
			}
			tick.Stop()
			for pglogrepl.LSN(s.published.Load()) != pglogrepl.LSN(end) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			stop()
			calls := counter.calls()
			b.ReportMetric(float64(b.N)/float64(max(calls, 1)), "rows/call")
			b.ReportMetric((procSeconds(b, srv.PID())-cpu0)*1e6/float64(b.N), "redis-µs/row")
		})
	}
}

type nopReceiver struct{}

func (nopReceiver) Receive(backplane.Stream, backplane.Offset, *syncgate.Event) {}
func (nopReceiver) Reset(backplane.Stream, backplane.Offset)                    {}

// countingPublisher counts the calls it passes on.
type countingPublisher struct {
	pub Publisher
	mu  sync.Mutex
	n   int
}

func (c *countingPublisher) PublishAt(ctx context.Context, source string, events []syncgate.Event, positions []string) ([]string, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.pub.PublishAt(ctx, source, events, positions)
}

func (c *countingPublisher) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// procSeconds is a process's user and system CPU time (/proc/<pid>/stat,
// in USER_HZ = 100 ticks a second).
func procSeconds(tb testing.TB, pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}
