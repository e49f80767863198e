package publisher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/wstest"
	"github.com/syncgate/syncgate/publisher"
)

// counter is an http.RoundTripper that counts the requests that reach the
// network (after our client-side checks).
type counter struct {
	next     http.RoundTripper
	requests atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	return c.next.RoundTrip(r)
}

// newPublisher returns an HTTP publisher to n and the request counter.
func newPublisher(t testing.TB, url, key string, mod func(*publisher.Config)) (*publisher.Publisher, *counter) {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	c := &counter{next: tr}
	cfg := publisher.Config{URL: url, Key: key, HTTPClient: &http.Client{Transport: c},
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	p, err := publisher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, c
}

// subscriber dials n and subscribes to project/collection.
func subscriber(t testing.TB, n *wstest.Node, project, collection string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "u1", time.Hour, []string{project}, nil, nil)})
	c.Subscribe("s1", project, collection, "")
	return c
}

// flaky is a backplane whose Publish fails while fail > 0 (decrementing it),
// or always when mode says so.
type flaky struct {
	*backplane.Memory
	fail     atomic.Int64 // remaining unavailable answers
	internal atomic.Bool  // fail with a non-availability error
	calls    atomic.Int64
	block    chan struct{} // when set, Publish waits for it or ctx
}

func newFlaky() *flaky { return &flaky{Memory: backplane.NewMemory(backplane.MemoryConfig{})} }

func (f *flaky) Publish(ctx context.Context, evs []syncgate.Event) ([]string, error) {
	f.calls.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.internal.Load() {
		return nil, fmt.Errorf("disk on fire")
	}
	if f.fail.Add(-1) >= 0 {
		return nil, fmt.Errorf("publish: %w: test outage", backplane.ErrUnavailable)
	}
	return f.Memory.Publish(ctx, evs)
}

// seqEvent is event number seq of writer w, for ordering checks.
func seqEvent(project, collection string, w, seq int) syncgate.Event {
	return syncgate.Event{Type: syncgate.TypeInsert, Project: project, Collection: collection,
		DocumentID: fmt.Sprintf("w%d-%d", w, seq), Document: json.RawMessage(fmt.Sprintf(`{"w":%d,"seq":%d}`, w, seq))}
}

func seqOf(t testing.TB, ev syncgate.Event) (w, seq int) {
	t.Helper()
	var d struct{ W, Seq int }
	if err := json.Unmarshal(ev.Document, &d); err != nil {
		t.Fatalf("document %s: %v", ev.Document, err)
	}
	return d.W, d.Seq
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
