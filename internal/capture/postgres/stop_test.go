package postgres_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/capture/postgres"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/pgtest"
)

// heldPublisher holds its first PublishAt call until release is closed,
// then completes it whatever the caller's context says: a publish already
// sent to Redis when the stop arrives is answered.
type heldPublisher struct {
	pub     postgres.Publisher
	entered chan struct{} // closed when the first call arrives
	release chan struct{}
	once    sync.Once
}

func (h *heldPublisher) PublishAt(ctx context.Context, source string, events []syncgate.Event, positions []string) ([]string, error) {
	first := false
	h.once.Do(func() { first = true })
	if !first {
		return h.pub.PublishAt(ctx, source, events, positions)
	}
	close(h.entered)
	<-h.release
	return h.pub.PublishAt(context.Background(), source, events, positions)
}

// TestStopMidBatch: a graceful stop while a publish is in flight and more
// transactions are decoded and queued behind it, three times over, then a
// capture that runs to the end: every row arrives exactly once, in order.
// The stopped captures confirm nothing that was not published.
func TestStopMidBatch(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE seq (n int PRIMARY KEY)`)
	rec := newRecorder()
	bp := backplane.NewMemory(backplane.MemoryConfig{HistorySize: 100_000})
	if err := bp.Start(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bp.Close() })

	// run starts a capture; stop cancels it (a graceful stop) and wait
	// waits for Run to return.
	run := func(pub postgres.Publisher) (stop context.CancelFunc, wait func()) {
		c, err := postgres.New(postgres.Config{URL: pg.URL(), Logger: testLogger(), Metrics: metrics.New()}, pub)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		var once sync.Once
		wait = func() {
			once.Do(func() {
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		}
		t.Cleanup(func() { cancel(); wait() })
		awaitActive(t, c, true)
		return cancel, wait
	}

	// insert commits rows single-row transactions in one round trip (a
	// simple-protocol string of BEGIN; INSERT; COMMIT; …).
	n := 0
	insert := func(rows int) {
		t.Helper()
		var b strings.Builder
		for i := 0; i < rows; i++ {
			n++
			fmt.Fprintf(&b, "BEGIN; INSERT INTO seq VALUES (%d); COMMIT; ", n)
		}
		exec(t, sql, b.String())
	}
	for round := 0; round < 3; round++ {
		held := &heldPublisher{pub: bp, entered: make(chan struct{}), release: make(chan struct{})}
		stop, wait := run(held)
		insert(1)
		select {
		case <-held.entered:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: no publish within 60s", round)
		}
		// The publish is in flight; these are decoded and queued behind it
		// (more than the queue holds, so the reader blocks in the
		// hand-over).
		insert(2500)
		stop()
		close(held.release)
		wait()
	}
	stop, wait := run(bp)
	insert(50)
	rec.wait(t, n, 60*time.Second)
	stop()
	wait()
	evs := rec.get()
	if len(evs) != n {
		t.Errorf("%d events, want %d (each row once)", len(evs), n)
	}
	for i, ev := range evs {
		if ev.Type != syncgate.TypeInsert || ev.DocumentID != strconv.Itoa(i+1) {
			t.Fatalf("event %d: %s id=%s, want insert id=%d (each row once, in order)", i, ev.Type, ev.DocumentID, i+1)
		}
	}
}

// TestIdleSlotConfirmed: once everything is published and the database
// is idle, the slot is confirmed up to the server's WAL end (from its
// keepalives), so an idle capture does not make the slot hold WAL.
func TestIdleSlotConfirmed(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE idle (id int PRIMARY KEY)`)
	r := startCapture(t, pg.URL(), nil)
	exec(t, sql, `INSERT INTO idle VALUES (1)`)
	r.rec.wait(t, 1, 60*time.Second) // the insert is published
	// WAL past the last transaction that no transaction carries: only a
	// keepalive's WAL end lets the slot move past it.
	exec(t, sql, `CHECKPOINT`)
	var end string
	if err := sql.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var confirmed string
		var caught bool
		err := sql.QueryRow(context.Background(),
			`SELECT confirmed_flush_lsn::text, confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'syncgate'`, end).Scan(&confirmed, &caught)
		if err != nil {
			t.Fatal(err)
		}
		if caught {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot confirmed at %s, not at the idle server's WAL end %s within 60s", confirmed, end)
		}
		time.Sleep(20 * time.Millisecond) // polling the catalog: nothing to await
	}
}
