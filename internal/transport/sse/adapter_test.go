package sse

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
)

// fakeResponse is an http.ResponseWriter with the deadline and flush of a
// real one: the adapter over the real engine, without a network. What a
// client would have received is what was flushed.
type fakeResponse struct {
	mu      sync.Mutex
	header  http.Header
	status  int
	pending bytes.Buffer // written, not flushed
	seen    bytes.Buffer // flushed
	flushes int
	stall   bool // writes miss their deadline
	changed chan struct{}
}

func newFakeResponse() *fakeResponse {
	return &fakeResponse{header: http.Header{}, changed: make(chan struct{}, 1)}
}

func (f *fakeResponse) Header() http.Header { return f.header }

func (f *fakeResponse) WriteHeader(code int) {
	f.mu.Lock()
	f.status = code
	f.mu.Unlock()
}

func (f *fakeResponse) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == 0 {
		f.status = http.StatusOK
	}
	if f.stall {
		return 0, os.ErrDeadlineExceeded
	}
	return f.pending.Write(p)
}

func (f *fakeResponse) FlushError() error {
	f.mu.Lock()
	_, _ = f.pending.WriteTo(&f.seen)
	f.flushes++
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeResponse) SetWriteDeadline(time.Time) error { return nil }

// await waits until what the client saw satisfies cond.
func (f *fakeResponse) await(t *testing.T, what string, cond func(seen string) bool) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		seen := f.seen.String()
		f.mu.Unlock()
		if cond(seen) {
			return seen
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; the client saw %q", what, seen)
		}
	}
}

type grantAll struct{}

func (grantAll) Verify(context.Context, string) (*auth.Claims, error) {
	return &auth.Claims{Subject: "u", ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"*"}}, nil
}

// TestAdapterOverEngine drives the transport through a real session: the
// subscribed messages, events in one message per batch with one flush, a
// gap as subscribed recovered:false, a keep-alive, and the ends: token
// expiry as an error event, a stalled client as 4008.
func TestAdapterOverEngine(t *testing.T) {
	bp := backplane.NewMemory(backplane.MemoryConfig{})
	defer bp.Close()
	h, err := hub.New(hub.Config{Verifier: grantAll{}, WriteTimeout: time.Second}, bp)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := backplane.Stream{Project: "p", Collection: "c"}
	x := New(h, Config{KeepAlive: 20 * time.Millisecond})

	run := func(t *testing.T, f *fakeResponse) (*hub.Session, *transport) {
		sess, err := h.Register(context.Background(), hub.SessionConfig{Transport: hub.TransportSSE, Heartbeat: x.cfg.KeepAlive, AuthDeadline: -1})
		if err != nil {
			t.Fatal(err)
		}
		tr := newTransport(f, []Subscription{{Stream: st}}, x.cfg, time.Second)
		sess.Attach(tr)
		claims, _ := grantAll{}.Verify(context.Background(), "")
		sess.Authenticate(claims)
		if !x.open(sess, tr, httptest.NewRequest(http.MethodGet, "/v1/sse", nil)) {
			t.Fatal("open refused")
		}
		return sess, tr
	}

	t.Run("messages", func(t *testing.T) {
		f := newFakeResponse()
		sess, tr := run(t, f)
		defer sess.Finish()
		f.await(t, "subscribed", func(s string) bool { return strings.Contains(s, "event: subscribed\ndata: {") })
		if ct := f.header.Get("Content-Type"); ct != "text/event-stream" || f.header.Get("X-Accel-Buffering") != "no" {
			t.Errorf("headers %v", f.header)
		}
		f.mu.Lock()
		before := f.flushes
		f.mu.Unlock()
		evs := []syncgate.Event{}
		for i := range 3 {
			evs = append(evs, syncgate.Event{Type: "insert", Project: "p", Collection: "c", DocumentID: string(rune('a' + i)), Timestamp: time.Now()})
		}
		offs, err := bp.Publish(context.Background(), evs) // one batch: delivered before the writer wakes, or in a few
		if err != nil {
			t.Fatal(err)
		}
		seen := f.await(t, "three events", func(s string) bool { return strings.Count(s, `"documentId"`) == 3 })
		if n := strings.Count(seen, "event: events\n"); n < 1 || n > 3 {
			t.Errorf("%d events messages for 3 events", n)
		}
		f.mu.Lock()
		flushes := f.flushes - before
		f.mu.Unlock()
		if flushes > strings.Count(seen, "event: events\n")+1 {
			t.Errorf("%d flushes for %d events messages", flushes, strings.Count(seen, "event: events\n"))
		}
		if !strings.Contains(seen, "id: 1."+backplane.StreamTag(st)+"~") || !strings.Contains(seen, strings.Split(offs[2], ":")[1]) {
			t.Errorf("no cursor with the last offset %s in %q", offs[2], seen)
		}
		at, err := backplane.ParseOffset(offs[2])
		if err != nil {
			t.Fatal(err)
		}
		h.Reset(st, at)                                                                     // at the head: no gap
		h.Reset(st, backplane.Offset{Epoch: "m0", Stream: backplane.StreamTag(st), Hi: 99}) // another epoch: a gap
		f.await(t, "recovered:false", func(s string) bool { return strings.Contains(s, `"recovered":false`) })
		f.await(t, "keep-alive", func(s string) bool { return strings.Contains(s, "\n:\n\n") })
		sess.Close(hub.CloseTokenExpired, "token expired", true)
		f.await(t, "error event", func(s string) bool {
			return strings.HasSuffix(s, "event: error\ndata: {\"op\":\"error\",\"code\":\"unauthorized\",\"message\":\"token expired\"}\n\n")
		})
		<-sess.Context().Done()
		if tr.closed != hub.CloseTokenExpired {
			t.Errorf("closed with %d", tr.closed)
		}
	})
	t.Run("stalled client", func(t *testing.T) {
		f := newFakeResponse()
		sess, tr := run(t, f)
		defer sess.Finish()
		f.await(t, "subscribed", func(s string) bool { return strings.Contains(s, "event: subscribed") })
		f.mu.Lock()
		f.stall = true
		f.mu.Unlock()
		if _, err := bp.Publish(context.Background(), []syncgate.Event{{Type: "insert", Project: "p", Collection: "c", Timestamp: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		<-sess.Context().Done()
		if tr.closed != hub.CloseSlowConsumer {
			t.Errorf("a stalled client closed with %d, want 4008", tr.closed)
		}
	})
}
