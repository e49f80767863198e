package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/wstest"
	"github.com/syncgate/syncgate/publisher"
)

func TestHelpersDeliverToSubscriber(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := subscriber(t, n, "p1", "events")
	p, _ := newPublisher(t, n.URL, wstest.Key, nil)
	ctx := context.Background()

	type doc struct {
		Title string `json:"title"`
	}
	var offsets []string
	must := func(off string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, off)
	}
	must(p.DocumentCreated(ctx, "p1", "events", "e1", "user-42", doc{"Draft"}))
	must(p.DocumentUpdated(ctx, "p1", "events", "e1", "user-42", doc{"Launch"}, doc{"Draft"}))
	must(p.DocumentDeleted(ctx, "p1", "events", "e1", "user-42"))
	must(p.CollectionCleared(ctx, "p1", "events", "admin", publisher.WithAudience(nil, []string{"admin"})))
	must(p.Insert(ctx, "p1", "events", "7", map[string]any{"id": 7}))
	must(p.Update(ctx, "p1", "events", "7", map[string]any{"id": 7, "n": 2}, map[string]any{"id": 7, "n": 1}))
	must(p.Delete(ctx, "p1", "events", "7", map[string]any{"id": 7, "n": 2}))
	must(p.SchemaChanged(ctx, "p1", "events", syncgate.TypeAddColumn, map[string]string{"column": "n", "type": "int"}, nil))

	want := []struct{ typ, id, doc, old, actor string }{
		{"document:created", "e1", `{"title":"Draft"}`, ``, "user-42"},
		{"document:updated", "e1", `{"title":"Launch"}`, `{"title":"Draft"}`, "user-42"},
		{"document:deleted", "e1", ``, ``, "user-42"},
		{"collection:cleared", "", ``, ``, "admin"},
		{"insert", "7", `{"id":7}`, ``, ""},
		{"update", "7", `{"id":7,"n":2}`, `{"id":7,"n":1}`, ""},
		{"delete", "7", ``, `{"id":7,"n":2}`, ""},
		{"add_column", "", `{"column":"n","type":"int"}`, ``, ""},
	}
	// The subscriber holds no admin role: the cleared event with an
	// audience must not reach it.
	got := c.Events(len(want) - 1)
	j := 0
	for i, w := range want {
		if w.typ == "collection:cleared" {
			continue
		}
		ev := got[j]
		j++
		if ev.Type != w.typ || ev.DocumentID != w.id || string(ev.Document) != w.doc || string(ev.OldDocument) != w.old || ev.Actor != w.actor {
			t.Errorf("event %d: got %s %q doc=%s old=%s actor=%q, want %+v", i, ev.Type, ev.DocumentID, ev.Document, ev.OldDocument, ev.Actor, w)
		}
		if ev.Offset != offsets[i] {
			t.Errorf("event %d: delivered offset %s, Publish returned %s", i, ev.Offset, offsets[i])
		}
		if ev.Timestamp.IsZero() || time.Since(ev.Timestamp) > time.Minute {
			t.Errorf("event %d: timestamp %v", i, ev.Timestamp)
		}
	}
}

func TestPublishSplitsLargeCallsInOrder(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := subscriber(t, n, "p1", "rows")
	p, cnt := newPublisher(t, n.URL, wstest.Key, nil)
	const total = 2500
	evs := make([]syncgate.Event, total)
	for i := range evs {
		evs[i] = seqEvent("p1", "rows", 0, i)
	}
	offsets, err := p.Publish(context.Background(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(offsets) != total {
		t.Fatalf("%d offsets for %d events", len(offsets), total)
	}
	if got := cnt.requests.Load(); got != 3 {
		t.Errorf("%d requests for %d events, want 3 (at most 1,000 per request)", got, total)
	}
	got := c.Events(total)
	for i, ev := range got {
		if _, seq := seqOf(t, ev); seq != i || ev.Offset != offsets[i] {
			t.Fatalf("event %d: seq %d offset %s, want seq %d offset %s", i, seq, ev.Offset, i, offsets[i])
		}
	}

	// A call over 1 MiB is split by size too.
	big := strings.Repeat("x", 200<<10)
	evs = evs[:12]
	for i := range evs {
		evs[i].Document = json.RawMessage(`"` + big + `"`)
	}
	before := cnt.requests.Load()
	if _, err := p.Publish(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	if got := cnt.requests.Load() - before; got != 3 {
		t.Errorf("12 events of 200 KiB took %d requests, want 3 (5 fit under 1 MiB)", got)
	}
	c.Events(12)
}

// Client-side validation must refuse exactly what the gateway refuses, with
// the gateway's words, and send nothing.
func TestInvalidEventsRefusedBeforeSendingWithServerMessage(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	p, cnt := newPublisher(t, n.URL, wstest.Key, nil)
	// A fixed timestamp: the size limit counts it, and a defaulted one
	// varies in length (trailing zeros of the fraction are dropped).
	good := syncgate.Event{Type: "insert", Project: "p1", Collection: "rows", DocumentID: "1", Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)}
	mod := func(f func(*syncgate.Event)) syncgate.Event { e := good; f(&e); return e }
	cases := map[string]syncgate.Event{
		"type":           mod(func(e *syncgate.Event) { e.Type = "Insert" }),
		"empty type":     mod(func(e *syncgate.Event) { e.Type = "" }),
		"project":        mod(func(e *syncgate.Event) { e.Project = "p 1" }),
		"collection":     mod(func(e *syncgate.Event) { e.Collection = "*" }),
		"long id":        mod(func(e *syncgate.Event) { e.DocumentID = strings.Repeat("i", 257) }),
		"offset":         mod(func(e *syncgate.Event) { e.Offset = "m1:1-0" }),
		"empty audience": mod(func(e *syncgate.Event) { e.Audience = &syncgate.Audience{} }),
		"too large":      mod(func(e *syncgate.Event) { e.Document = json.RawMessage(`"` + strings.Repeat("x", 300<<10) + `"`) }),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			for _, batch := range [][]syncgate.Event{{bad}, {good, bad}} {
				var body []byte
				var err error
				if len(batch) == 1 {
					body, err = json.Marshal(bad)
				} else {
					body, err = json.Marshal(map[string]any{"events": batch})
				}
				if err != nil {
					t.Fatal(err)
				}
				status, out := n.PublishRaw(t, wstest.Key, body)
				var srv struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(out, &srv); err != nil || status != http.StatusBadRequest {
					t.Fatalf("gateway answered %d %s, want 400", status, out)
				}

				before := cnt.requests.Load()
				offs, err := p.Publish(context.Background(), batch...)
				var pe *publisher.Error
				if !errors.As(err, &pe) {
					t.Fatalf("Publish(%d events): err %v, want *publisher.Error", len(batch), err)
				}
				if pe.Code != srv.Error.Code || pe.Message != srv.Error.Message || pe.StatusCode != 0 || offs != nil {
					t.Errorf("client: %q %q (status %d)\ngateway: %q %q", pe.Code, pe.Message, pe.StatusCode, srv.Error.Code, srv.Error.Message)
				}
				if !errors.Is(err, syncgate.ErrInvalidEvent) {
					t.Errorf("error %v does not wrap syncgate.ErrInvalidEvent", err)
				}
				if got := cnt.requests.Load() - before; got != 0 {
					t.Errorf("%d requests sent for an invalid event", got)
				}
			}
		})
	}
	// Not representable in a body json.Marshal builds, but caught too.
	_, err := p.Publish(context.Background(), mod(func(e *syncgate.Event) { e.Document = json.RawMessage(`{"a":`) }))
	if !errors.Is(err, syncgate.ErrInvalidEvent) || !strings.Contains(err.Error(), "document is not valid JSON") {
		t.Errorf("broken document: %v", err)
	}
	if _, err := p.SchemaChanged(context.Background(), "p1", "rows", "insert", nil, nil); !errors.Is(err, syncgate.ErrInvalidEvent) {
		t.Errorf("SchemaChanged with a non-schema type: %v", err)
	}
}

func TestServerErrorsCarryStatusAndCode(t *testing.T) {
	bp := newFlaky()
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	ctx := context.Background()
	ev := seqEvent("p1", "rows", 0, 0)

	t.Run("unauthorized", func(t *testing.T) {
		p, cnt := newPublisher(t, n.URL, "wrong-key", nil)
		_, err := p.Publish(ctx, ev)
		var pe *publisher.Error
		if !errors.As(err, &pe) || pe.StatusCode != 401 || pe.Code != "unauthorized" || pe.Message != "missing or unknown publish key" {
			t.Fatalf("got %#v", err)
		}
		if cnt.requests.Load() != 1 {
			t.Errorf("401 was retried: %d requests", cnt.requests.Load())
		}
	})
	t.Run("503 retried until it succeeds", func(t *testing.T) {
		p, cnt := newPublisher(t, n.URL, wstest.Key, nil)
		bp.fail.Store(2)
		offs, err := p.Publish(ctx, ev)
		if err != nil || len(offs) != 1 {
			t.Fatalf("offsets %v err %v", offs, err)
		}
		if cnt.requests.Load() != 3 {
			t.Errorf("%d requests, want 3 (two 503s, then 200)", cnt.requests.Load())
		}
	})
	t.Run("503 after every retry", func(t *testing.T) {
		p, cnt := newPublisher(t, n.URL, wstest.Key, func(c *publisher.Config) { c.MaxRetries = 2 })
		bp.fail.Store(100)
		defer bp.fail.Store(0)
		_, err := p.Publish(ctx, ev)
		var pe *publisher.Error
		if !errors.As(err, &pe) || pe.StatusCode != 503 || pe.Code != "unavailable" {
			t.Fatalf("got %v", err)
		}
		if !errors.Is(err, publisher.ErrUnavailable) || errors.Is(err, publisher.ErrUncertain) {
			t.Errorf("503 should be ErrUnavailable and not ErrUncertain: %v", err)
		}
		if cnt.requests.Load() != 3 {
			t.Errorf("%d requests, want 3 (MaxRetries 2)", cnt.requests.Load())
		}
	})
	t.Run("500 not retried", func(t *testing.T) {
		p, cnt := newPublisher(t, n.URL, wstest.Key, nil)
		bp.internal.Store(true)
		defer bp.internal.Store(false)
		_, err := p.Publish(ctx, ev)
		var pe *publisher.Error
		if !errors.As(err, &pe) || pe.StatusCode != 500 || pe.Code != "internal" {
			t.Fatalf("got %v", err)
		}
		if cnt.requests.Load() != 1 {
			t.Errorf("500 was retried: %d requests", cnt.requests.Load())
		}
	})
}

// A request that may have been applied is never retried.
func TestUncertainOutcomesAreNotRetried(t *testing.T) {
	var hits atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.Header.Get("User-Agent") {
		case "abort":
			panic(http.ErrAbortHandler) // connection dropped after the request arrived
		case "hang":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "proxy":
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ev := seqEvent("p1", "rows", 0, 0)
	for _, mode := range []string{"abort", "hang", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			p, _ := newPublisher(t, srv.URL, "k", func(c *publisher.Config) { c.UserAgent = mode })
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			before := hits.Load()
			_, err := p.Publish(ctx, ev)
			if !errors.Is(err, publisher.ErrUncertain) {
				t.Fatalf("got %v, want ErrUncertain", err)
			}
			if got := hits.Load() - before; got != 1 {
				t.Errorf("request reached the server %d times, want once", got)
			}
			if mode == "hang" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not say the deadline passed", err)
			}
			if mode == "proxy" {
				var pe *publisher.Error
				if !errors.As(err, &pe) || pe.StatusCode != 502 || pe.Code != "unavailable" {
					t.Errorf("got %#v", err)
				}
			}
		})
	}
}

// Connections refused are retried (nothing was sent), through the real
// http.Transport.
func TestConnectionRefusedIsRetried(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := subscriber(t, n, "p1", "rows")
	var dials atomic.Int64
	dialer := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) <= 2 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return dialer.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	p, err := publisher.New(publisher.Config{URL: n.URL, Key: wstest.Key, HTTPClient: &http.Client{Transport: tr}, RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	offs, err := p.Publish(context.Background(), seqEvent("p1", "rows", 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Events(1); got[0].Offset != offs[0] || dials.Load() != 3 {
		t.Errorf("delivered %s (published %s) after %d dials, want 3", got[0].Offset, offs[0], dials.Load())
	}

	// Nobody listening at all: ErrUnavailable, certainly not applied.
	p2, _ := newPublisher(t, "http://"+freeAddr(t), "k", func(c *publisher.Config) { c.MaxRetries = 1 })
	_, err = p2.Publish(context.Background(), seqEvent("p1", "rows", 0, 2))
	if !errors.Is(err, publisher.ErrUnavailable) || errors.Is(err, publisher.ErrUncertain) {
		t.Errorf("got %v, want ErrUnavailable without ErrUncertain", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  publisher.Config
		want string
	}{
		{publisher.Config{Key: "k"}, "Config.URL is required"},
		{publisher.Config{URL: "localhost:8080", Key: "k"}, `Config.URL "localhost:8080"`},
		{publisher.Config{URL: "ftp://x", Key: "k"}, `Config.URL "ftp://x"`},
		{publisher.Config{URL: "http://x"}, "Config.Key"},
		{publisher.Config{URL: "http://x", Key: "k", RetryBase: -1}, "Config.RetryBase=-1ns"},
		{publisher.Config{URL: "http://x", Key: "k", RetryMax: -time.Second}, "Config.RetryMax=-1s"},
	} {
		if _, err := publisher.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
	p, err := publisher.New(publisher.Config{URL: "http://x", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	if _, err := p.Publish(context.Background(), seqEvent("p", "c", 0, 0)); !errors.Is(err, publisher.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
}
