package sse_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/transport/sse"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestStreamWebhook: an opaque credential is checked by the webhook, which
// learns that it came over "sse"; a refusal is a 401, a webhook that does
// not answer a 503 (and, for an EventSource, a dropped connection, which
// the browser retries).
func TestStreamWebhook(t *testing.T) {
	hook := wstest.StartWebhook(t)
	hook.Grant("sk_good", "u1", time.Hour, "demo")
	v, err := auth.NewVerifier(auth.Config{Webhook: auth.WebhookConfig{URL: hook.URL, Timeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	n := wstest.StartNode(t, wstest.NodeConfig{Verifier: v})
	s := openStream(t, sseURL(n.URL, []string{"demo/todos"}, url.Values{"token": {"sk_good"}}), nil)
	s.subscribed()
	if tr := hook.Transports(); len(tr) != 1 || tr[0] != "sse" {
		t.Errorf("webhook transports %q, want [sse]", tr)
	}
	resp, cancel := get(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer("sk_bad"))
	resp.Body.Close()
	cancel()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("refused credential: %d, want 401", resp.StatusCode)
	}
	hook.Hold() // no answer within the timeout: a temporary failure
	resp, cancel = get(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer("sk_slow"))
	resp.Body.Close()
	cancel()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("webhook timeout: %d, want 503 with Retry-After", resp.StatusCode)
	}
	_, err = http.DefaultClient.Do(eventSourceRequest(t, sseURL(n.URL, []string{"demo/todos"}, nil), "sk_slow"))
	if err == nil {
		t.Error("webhook timeout for an EventSource: a status, want a dropped connection")
	}
	hook.Release()
}

func eventSourceRequest(t *testing.T, u, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// failingBackplane refuses to subscribe the project "down".
type failingBackplane struct{ backplane.Backplane }

func (f failingBackplane) Subscribe(ctx context.Context, s backplane.Stream) error {
	if s.Project == "down" {
		return fmt.Errorf("subscribe %s: %w", s, backplane.ErrUnavailable)
	}
	return f.Backplane.Subscribe(ctx, s)
}

// TestStreamBackplaneDown: a subscription the backplane cannot make is a
// 503 before the stream starts, and leaves nothing behind.
func TestStreamBackplaneDown(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: failingBackplane{backplane.NewMemory(backplane.MemoryConfig{})}})
	tok := token(t, time.Hour, "*")
	resp, cancel := get(t, sseURL(n.URL, []string{"demo/todos", "down/x"}, nil), bearer(tok))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("backplane down: %d %s, want a 503 JSON error", resp.StatusCode, body)
	}
	_, err := http.DefaultClient.Do(eventSourceRequest(t, sseURL(n.URL, []string{"down/x"}, nil), tok))
	if err == nil {
		t.Error("backplane down for an EventSource: a status, want a dropped connection")
	}
	n.AwaitReleased(t, n.Hub.Connections)
	if p := n.Metric(t, "syncgate_panics_total"); p != 0 {
		t.Errorf("%v panics", p)
	}
}

// TestStreamAudience: an event for other users is not delivered, live or
// replayed.
func TestStreamAudience(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	tok := token(t, time.Hour, "demo") // user u1
	first := n.Publish(t, wstest.Doc("demo", "todos", 0))
	hidden := wstest.Doc("demo", "todos", 1)
	hidden.Audience = &syncgate.Audience{Users: []string{"someone-else"}}
	n.Publish(t, hidden, wstest.Doc("demo", "todos", 2))
	s := openStream(t, sseURL(n.URL, []string{"demo/todos@" + first[0]}, nil), bearer(tok))
	s.subscribed()
	evs, _ := s.events(1)
	wantSeqs(t, "replay", evs, 2, 2)
	n.Publish(t, hidden, wstest.Doc("demo", "todos", 3))
	evs, _ = s.events(1)
	wantSeqs(t, "live", evs, 3, 3)
}

// FuzzParseRequest: no query or Last-Event-ID makes ParseRequest panic, and
// what it accepts is valid.
func FuzzParseRequest(f *testing.F) {
	f.Add("sub=demo/todos@m3fa1t0123456789ab:1-0&token=x", "")
	f.Add("sub=a/*&sub=b/c", "1.0123456789ab~m:1-0")
	f.Fuzz(func(t *testing.T, query, lastID string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/sse", nil)
		r.URL.RawQuery = query
		r.Header.Set("Last-Event-ID", lastID)
		req, err := sse.ParseRequest(r, 100)
		if err != nil {
			var re *sse.RequestError
			if !errors.As(err, &re) || re.Status != http.StatusBadRequest || re.Message == "" {
				t.Fatalf("error %v is not a 400 RequestError", err)
			}
			return
		}
		for _, s := range req.Subs {
			if err := syncgate.ValidateSubscription(s.Stream.Project, s.Stream.Collection); err != nil {
				t.Fatalf("accepted %+v: %v", s, err)
			}
			if _, err := backplane.ParseOffset(s.Since); s.Since != "" && err != nil {
				t.Fatalf("accepted since %q: %v", s.Since, err)
			}
		}
	})
}

// TestStreamResetMidStream: when the backplane lost events it cannot
// replay, the stream says so with a `subscribed` message, recovered:false,
// whose id moves the subscription past the loss: a resume from it does
// not hand back what the client reloaded.
func TestStreamResetMidStream(t *testing.T) {
	l := wstest.NewLossy()
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: l})
	st := backplane.Stream{Project: "demo", Collection: "todos"}
	u := sseURL(n.URL, []string{"demo/todos"}, url.Values{"token": {token(t, time.Hour, "demo")}})
	s := openStream(t, u, nil)
	s.subscribed()
	publishSeq(t, n, "demo", "todos", 1, 1)
	s.events(1)
	lost := l.LoseOne(t, st, 2)
	l.ResetTo(t, st, lost)
	m := s.next()
	var d subscribedData
	if m.Event != "subscribed" || json.Unmarshal([]byte(m.Data), &d) != nil || d.Recovered || d.Offset != lost {
		t.Fatalf("after a reset: %+v, want subscribed recovered:false at %s", m, lost)
	}
	if c, err := sse.ParseCursor(m.ID, 1); err != nil || c[backplane.StreamTag(st)] != lost {
		t.Fatalf("the reset's id %q (%v) does not hold %s", m.ID, err, lost)
	}
	publishSeq(t, n, "demo", "todos", 3, 3)
	evs, _ := s.events(1)
	wantSeqs(t, "after the reset", evs, 3, 3)
	s.close()
	publishSeq(t, n, "demo", "todos", 4, 4)
	s = openStream(t, u, http.Header{"Last-Event-Id": {m.ID}}) // an id from before event 3
	if d := s.subscribed(); !d.Recovered {
		t.Fatalf("resume from the reset's id: %+v", d)
	}
	evs, _ = s.events(2)
	wantSeqs(t, "resumed after the reset", evs, 3, 4)
}

// TestStreamLongReplay: a resume over far more history than the queue
// bound is paged in as the client reads, not taken for a slow consumer.
func TestStreamLongReplay(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxQueueBytes: 32 << 10},
		Backplane: backplane.NewMemory(backplane.MemoryConfig{HistorySize: 5000})})
	first := n.Publish(t, wstest.Doc("demo", "todos", 0))
	for i := 1; i <= 3000; i += 500 {
		publishSeq(t, n, "demo", "todos", i, i+499)
	}
	s := openStream(t, sseURL(n.URL, []string{"demo/todos@" + first[0]}, nil), bearer(token(t, time.Hour, "demo")))
	if d := s.subscribed(); !d.Recovered {
		t.Fatalf("%+v", d)
	}
	var got []syncgate.Event
	for len(got) < 3000 {
		got = append(got, parseEvents(t, s.next()).Events...)
	}
	wantSeqs(t, "replay", got, 1, 3000)
	if c := n.Metric(t, "syncgate_slow_consumer_disconnects_total"); c != 0 {
		t.Errorf("%v slow-consumer closes during a replay", c)
	}
}
