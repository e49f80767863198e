package multinode

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/pgtest"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// startCaptureProc starts a gateway process that captures changes from the
// database at pgURL into the Redis at redisURL; extra adds environment
// variables.
func startCaptureProc(t testing.TB, redisURL, pgURL string, i int, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, addr: freeAddr(t), log: filepath.Join(t.TempDir(), "gateway"+strconv.Itoa(i)+".log"), env: []string{
		"SYNCGATE_REDIS_URL=" + redisURL,
		"SYNCGATE_POSTGRES_URL=" + pgURL,
		"SYNCGATE_JWT_SECRET=" + wstest.Secret,
		"SYNCGATE_PUBLISH_KEYS=" + wstest.Key,
		"SYNCGATE_SHUTDOWN_GRACE=1s",
		"SYNCGATE_HISTORY_SIZE=100000",
		"SYNCGATE_LOG_FORMAT=json",
	}}
	p.env = append(p.env, extra...)
	p.start()
	t.Cleanup(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// kill ends the process with SIGKILL: no drain, no last confirmation.
func (p *proc) kill() {
	p.t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// history reads a stream's whole history through a Redis backplane.
type history struct {
	bp *backplane.Redis
}

func openHistory(t testing.TB, url string) *history {
	t.Helper()
	bp, err := backplane.NewRedis(backplane.RedisConfig{URL: url, Logger: quiet(), HistorySize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if err := bp.Start(context.Background(), backplane.Fanout()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bp.Close() })
	return &history{bp: bp}
}

func (h *history) all(t testing.TB, s backplane.Stream) []syncgate.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	head, err := h.bp.History(ctx, s, "", backplane.Page{})
	if err != nil {
		return nil // Redis not answering yet: nothing seen
	}
	o, err := backplane.ParseOffset(head.Head)
	if err != nil {
		t.Fatal(err)
	}
	o.Hi, o.Lo = 0, 0
	var all []syncgate.Event
	for since := o.In(s).String(); ; {
		page, err := h.bp.History(ctx, s, since, backplane.Page{MaxEvents: 5000, MaxBytes: 8 << 20})
		if err != nil {
			return nil
		}
		all = append(all, page.Events...)
		if !page.More || len(page.Events) == 0 {
			return all
		}
		since = page.Events[len(page.Events)-1].Offset
	}
}

// writer inserts sequenced rows, one transaction each, retrying through a
// database restart; ON CONFLICT makes a retried commit that had landed a
// no-op, so every n is committed exactly once.
type writer struct {
	t    testing.TB
	url  string
	conn *pgx.Conn
}

func (w *writer) insert(from, to int) error {
	for n := from; n <= to; {
		if w.conn == nil {
			c, err := pgx.Connect(context.Background(), w.url)
			if err != nil {
				time.Sleep(50 * time.Millisecond) // the database is restarting: nothing to await but the next try
				continue
			}
			w.conn = c
		}
		_, err := w.conn.Exec(context.Background(), `INSERT INTO seq VALUES ($1, $2) ON CONFLICT DO NOTHING`, n, strings.Repeat("r", n%50))
		if err != nil {
			_ = w.conn.Close(context.Background())
			w.conn = nil
			continue
		}
		n++
	}
	return nil
}

// TestCaptureExactlyOnce: 2,000 sequenced single-row transactions across
// two gateway SIGKILLs, a database crash-restart and a Redis SIGKILL reach
// history exactly once each, in commit order.
func TestCaptureExactlyOnce(t *testing.T) {
	pg := pgtest.Start(t)
	rs := redistest.StartPersistent(t)
	setup, err := pgx.Connect(context.Background(), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(context.Background(), `CREATE TABLE seq (n int PRIMARY KEY, pad text)`); err != nil {
		t.Fatal(err)
	}
	_ = setup.Close(context.Background())

	h := openHistory(t, rs.URL())
	stream := backplane.Stream{Project: "public", Collection: "seq"}
	w := &writer{t: t, url: pg.URL()}
	t.Cleanup(func() {
		if w.conn != nil {
			_ = w.conn.Close(context.Background())
		}
	})
	gw := startCaptureProc(t, rs.URL(), pg.URL(), 0)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(gw.log)
			t.Logf("gateway log:\n%s", tail(log, 60000))
		}
	})

	// awaitEvents waits for history to hold at least n events; on a
	// timeout it logs what the capture left behind.
	awaitEvents := func(n int) {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for len(h.all(t, stream)) < n {
			if time.Now().After(deadline) {
				diagnose(t, gw, pg.URL(), rs, h.all(t, stream))
				t.Fatalf("timed out after 2m waiting for %d events in history", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The slot is created by the capture's first session: a row committed
	// before it exists is never captured. Write once the gateway captures.
	awaitCapturing(t, gw, -1)

	// phase writes rows from..to in the background and, once history holds
	// at least at events (the capture is mid-stream), disrupts and waits
	// for the capture to be back (the writer goes on meanwhile).
	phase := func(from, to, at int, disrupt func()) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.insert(from, to)
		}()
		awaitEvents(at)
		disrupt()
		wg.Wait()
	}
	restartGateway := func() {
		gw.kill()
		gw.start()
		awaitCapturing(t, gw, -1)
	}
	phase(1, 500, 200, restartGateway)
	phase(501, 1000, 700, func() {
		restarts := procMetric(gw, "syncgate_capture_restarts_total")
		pg.Crash()
		pg.Restart()
		awaitCapturing(t, gw, restarts)
	})
	// Redis killed mid-stream, with publish calls (of the transactions
	// that committed within BatchDelay of each other) in flight: those that
	// ran are in its append-only file, the others are retried, and the
	// positions skip what ran and was retried.
	phase(1001, 1500, 1150, func() {
		rs.Kill()
		rs.Restart()
	})
	phase(1501, 2000, 1650, restartGateway)
	awaitEvents(2000)
	// Stop cleanly, so anything late would be in history now.
	gw.stop()
	evs := h.all(t, stream)
	if len(evs) != 2000 {
		t.Errorf("history holds %d events, want 2000", len(evs))
	}
	for i, ev := range evs {
		var doc struct{ N int }
		if err := json.Unmarshal(ev.Document, &doc); err != nil {
			t.Fatal(err)
		}
		if ev.Type != syncgate.TypeInsert || doc.N != i+1 || ev.DocumentID != strconv.Itoa(i+1) {
			t.Fatalf("event %d: %s n=%d id=%s, want insert n=%d (events once each, in order)", i, ev.Type, doc.N, ev.DocumentID, i+1)
		}
	}
}

// diagnose logs what a stalled capture left behind: the slot, the rows, the
// recorded positions, and the gateway's goroutines (SIGQUIT makes it dump
// them into its log).
func diagnose(t *testing.T, gw *proc, pgURL string, rs *redistest.Server, evs []syncgate.Event) {
	c, err := pgx.Connect(context.Background(), pgURL)
	if err == nil {
		defer c.Close(context.Background())
		var slot string
		var rows, max int
		_ = c.QueryRow(context.Background(), `SELECT format('%s active=%s restart=%s confirmed=%s current=%s', slot_name, active, restart_lsn, confirmed_flush_lsn, pg_current_wal_lsn()) FROM pg_replication_slots`).Scan(&slot)
		_ = c.QueryRow(context.Background(), `SELECT count(*), coalesce(max(n), 0) FROM seq`).Scan(&rows, &max)
		t.Logf("slot: %s; table seq: %d rows, max %d", slot, rows, max)
	}
	keys, _ := rs.Do("KEYS", "sg:*:pos:*")
	for _, k := range strings.Split(keys, "\n") {
		v, _ := rs.Do("GET", k)
		t.Logf("position %s = %s", k, v)
	}
	if len(evs) > 0 {
		t.Logf("history: %d events, last documentId %s", len(evs), evs[len(evs)-1].DocumentID)
	}
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.DocumentID]++
	}
	var missing []int
	for n := 1; n <= 2000; n++ {
		if seen[strconv.Itoa(n)] == 0 {
			missing = append(missing, n)
		}
	}
	t.Logf("missing: %v", missing)
	if gw.cmd != nil {
		_ = gw.cmd.Process.Signal(syscall.SIGQUIT)
		<-gw.exited
		gw.cmd = nil
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// procMetric reads an unlabelled metric from a node's /metrics; -1 when
// the node does not answer or has no such metric.
func procMetric(p *proc, name string) float64 {
	resp, err := http.Get("http://" + p.Addr() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// captureActive reads syncgate_capture_active from a node's /metrics; -1
// when the node does not answer.
func captureActive(p *proc) int { return int(procMetric(p, "syncgate_capture_active")) }

// awaitCapturing waits until the node reports syncgate_capture_active 1
// in a capture session that started after the recorded restarts count:
// with restarts < 0 (a process started since, whose metrics start at
// zero) any session; else the counter must have grown past restarts
// first, so the 1 is not the session from before a database crash.
func awaitCapturing(t testing.TB, p *proc, restarts float64) {
	t.Helper()
	await(t, 60*time.Second, "the gateway capturing", func() bool {
		if restarts >= 0 {
			r := procMetric(p, "syncgate_capture_restarts_total")
			if r >= 0 && r <= restarts {
				return false
			}
		}
		return captureActive(p) == 1
	})
}

// TestCaptureOneOfTwoNodes: of two capturing gateways exactly one captures;
// when it is killed the other takes over within seconds, and every row is
// published once.
func TestCaptureOneOfTwoNodes(t *testing.T) {
	pg := pgtest.Start(t)
	rs := redistest.StartPersistent(t)
	setup, err := pgx.Connect(context.Background(), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setup.Close(context.Background()) })
	if _, err := setup.Exec(context.Background(), `CREATE TABLE seq (n int PRIMARY KEY, pad text)`); err != nil {
		t.Fatal(err)
	}
	h := openHistory(t, rs.URL())
	stream := backplane.Stream{Project: "public", Collection: "seq"}
	nodes := []*proc{startCaptureProc(t, rs.URL(), pg.URL(), 0), startCaptureProc(t, rs.URL(), pg.URL(), 1)}
	var active, standby *proc
	await(t, 60*time.Second, "one node capturing", func() bool {
		a, b := captureActive(nodes[0]), captureActive(nodes[1])
		switch {
		case a == 1 && b == 0:
			active, standby = nodes[0], nodes[1]
		case a == 0 && b == 1:
			active, standby = nodes[1], nodes[0]
		default:
			if a == 1 && b == 1 {
				t.Fatal("both nodes capture")
			}
			return false
		}
		return true
	})
	w := &writer{t: t, url: pg.URL()}
	t.Cleanup(func() {
		if w.conn != nil {
			_ = w.conn.Close(context.Background())
		}
	})
	_ = w.insert(1, 300)
	await(t, 60*time.Second, "300 events", func() bool { return len(h.all(t, stream)) >= 300 })
	// Still exactly one.
	if a, s := captureActive(active), captureActive(standby); a != 1 || s != 0 {
		t.Fatalf("capture_active: capturing node %d, standby %d; want 1 and 0", a, s)
	}
	active.kill()
	killed := time.Now()
	_ = w.insert(301, 600)
	await(t, 30*time.Second, "the standby capturing", func() bool { return captureActive(standby) == 1 })
	takeover := time.Since(killed)
	await(t, 60*time.Second, "600 events", func() bool { return len(h.all(t, stream)) >= 600 })
	standby.stop()
	evs := h.all(t, stream)
	if len(evs) != 600 {
		t.Fatalf("history holds %d events, want 600", len(evs))
	}
	for i, ev := range evs {
		if ev.DocumentID != strconv.Itoa(i+1) {
			t.Fatalf("event %d has documentId %s, want %d", i, ev.DocumentID, i+1)
		}
	}
	if takeover > 10*time.Second {
		t.Fatalf("takeover took %s, want seconds", takeover)
	}
	t.Logf("takeover %s after SIGKILL", takeover)
}
