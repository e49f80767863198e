package multinode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
// database at pgURL into the Redis at redisURL.
func startCaptureProc(t testing.TB, redisURL, pgURL string, i int) *proc {
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
	head, err := h.bp.History(ctx, s, "")
	if err != nil {
		return nil // Redis not answering yet: nothing seen
	}
	o, err := backplane.ParseOffset(head.Head)
	if err != nil {
		t.Fatal(err)
	}
	o.Hi, o.Lo = 0, 0
	got, err := h.bp.History(ctx, s, o.String())
	if err != nil {
		return nil
	}
	return got.Events
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
// two gateway SIGKILLs and a database crash-restart reach history exactly
// once each, in commit order.
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
			t.Logf("gateway log:\n%s", tail(log, 6000))
		}
	})

	// phase writes rows from..to in the background and, once history holds
	// at least at events (the capture is mid-stream), disrupts.
	phase := func(from, to, at int, disrupt func()) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.insert(from, to)
		}()
		await(t, 120*time.Second, fmt.Sprintf("%d events in history", at), func() bool { return len(h.all(t, stream)) >= at })
		disrupt()
		wg.Wait()
	}
	phase(1, 600, 200, func() {
		gw.kill()
		gw.start()
	})
	phase(601, 1300, 800, func() {
		pg.Crash()
		pg.Restart()
	})
	phase(1301, 2000, 1400, func() {
		gw.kill()
		gw.start()
	})
	await(t, 120*time.Second, "2000 events in history", func() bool { return len(h.all(t, stream)) >= 2000 })
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

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// captureActive reads syncgate_capture_active from a node's /metrics; -1
// when the node does not answer.
func captureActive(p *proc) int {
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
		if v, ok := strings.CutPrefix(line, "syncgate_capture_active "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
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
