package sse_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/transport/sse"
	"github.com/syncgate/syncgate/internal/wstest"
)

func TestStreamSubscribeAndLive(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	tok := token(t, time.Hour, "demo")
	s := openStream(t, sseURL(n.URL, []string{"demo/todos", "demo/*"}, nil), bearer(tok))
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := s.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	a, b := s.subscribed(), s.subscribed()
	if a.Project != "demo" || a.Collection != "todos" || b.Collection != "*" || !a.Recovered || !b.Recovered {
		t.Fatalf("subscribed %+v %+v", a, b)
	}
	offs := n.Publish(t, wstest.Doc("demo", "todos", 1), wstest.Doc("demo", "todos", 2), wstest.Doc("demo", "notes", 3))
	byColl := map[string][]int{}
	var lastID string
	for len(byColl["todos"])+len(byColl["*"]) < 5 {
		m := s.next()
		d := parseEvents(t, m)
		byColl[d.Collection] = append(byColl[d.Collection], seqs(t, d.Events)...)
		lastID = m.ID
	}
	if got := byColl["todos"]; len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("todos got %v", got)
	}
	if got := byColl["*"]; len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Errorf("* got %v", got)
	}
	c, err := sse.ParseCursor(lastID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Since(backplane.Stream{Project: "demo", Collection: "todos"}); got != offs[1] {
		t.Errorf("cursor %q holds %q for todos, want %q", lastID, got, offs[1])
	}
	if _, ok := c.Since(backplane.Stream{Project: "demo", Collection: "*"}); !ok {
		t.Errorf("cursor %q holds nothing for demo/*", lastID)
	}
	if got := n.Metric(t, "syncgate_connections", "transport", "sse"); got != 1 {
		t.Errorf("syncgate_connections{transport=sse} = %v", got)
	}
	if got := n.Metric(t, "syncgate_subscriptions", "transport", "sse"); got != 2 {
		t.Errorf("syncgate_subscriptions{transport=sse} = %v", got)
	}
	s.close()
	n.AwaitReleased(t, n.Hub.Connections)
	awaitMetric(t, n, "syncgate_disconnects_total", "code", "peer")
}

func TestStreamRefusals(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	good := token(t, time.Hour, "demo")
	limited := wstest.Token(t, "u1", time.Hour, []string{"demo"}, []string{"todos"}, nil)
	tests := []struct {
		name    string
		subs    []string
		query   url.Values
		header  http.Header
		status  int
		code    string
		message string
	}{
		{"no token", []string{"demo/todos"}, nil, nil, 401, "unauthorized", "missing token"},
		{"bad token", []string{"demo/todos"}, url.Values{"token": {"nope"}}, nil, 401, "unauthorized", "invalid token"},
		{"expired token", []string{"demo/todos"}, nil, bearer(token(t, -time.Minute, "demo")), 401, "unauthorized", "expired"},
		{"project not granted", []string{"demo/todos", "other/x"}, nil, bearer(good), 403, "forbidden", `other/x: forbidden: token does not grant project "other"`},
		{"star with some collections", []string{"demo/*"}, url.Values{"token": {limited}}, nil, 403, "forbidden", `not "*"`},
		{"bad name", []string{"demo/to do"}, nil, bearer(good), 400, "bad_request", `collection "to do"`},
		{"bad name before token", []string{"de mo/x"}, nil, nil, 400, "bad_request", `project "de mo"`},
		{"bad offset", []string{"demo/todos@yesterday"}, nil, bearer(good), 400, "bad_request", `"yesterday"`},
		{"bad Last-Event-ID", []string{"demo/todos"}, nil, http.Header{"Authorization": {"Bearer " + good}, "Last-Event-Id": {"5"}}, 400, "bad_request", "Last-Event-ID"},
		{"no subscription", nil, url.Values{"token": {good}}, nil, 400, "bad_request", "no subscription"},
		{"foreign origin", []string{"demo/todos"}, nil, http.Header{"Authorization": {"Bearer " + good}, "Origin": {"https://evil.example"}}, 403, "forbidden", "origin https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, cancel := get(t, sseURL(n.URL, tt.subs, tt.query), tt.header)
			defer cancel()
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string }
			}
			raw, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("%d %s: %v", resp.StatusCode, raw, err)
			}
			if resp.StatusCode != tt.status || body.Error.Code != tt.code || !strings.Contains(body.Error.Message, tt.message) {
				t.Fatalf("got %d %s; want %d %s containing %q", resp.StatusCode, raw, tt.status, tt.code, tt.message)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if got := n.Hub.Connections(); got != 0 {
		t.Errorf("%d sessions after refusals", got)
	}
}

// TestStreamResumeLastEventID: a stream that ends is resumed from its last
// id, which wins over the @offset the URL repeats: no gap, no duplicate.
func TestStreamResumeLastEventID(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	tok := token(t, time.Hour, "demo")
	first := n.Publish(t, wstest.Doc("demo", "todos", 0))
	u := sseURL(n.URL, []string{"demo/todos@" + first[0], "demo/notes"}, url.Values{"token": {tok}})
	s := openStream(t, u, nil)
	s.subscribed()
	s.subscribed()
	publishSeq(t, n, "demo", "todos", 1, 3)
	evs, id := s.events(3)
	wantSeqs(t, "first stream", evs, 1, 3)
	s.close()

	publishSeq(t, n, "demo", "todos", 4, 6)
	publishSeq(t, n, "demo", "notes", 1, 2) // notes was subscribed live at its head: both are after it
	s = openStream(t, u, http.Header{"Last-Event-Id": {id}})
	if a, b := s.subscribed(), s.subscribed(); !a.Recovered || !b.Recovered {
		t.Fatalf("resume not recovered: %+v %+v", a, b)
	}
	got := map[string][]int{}
	for len(got["todos"])+len(got["notes"]) < 5 {
		d := parseEvents(t, s.next())
		got[d.Collection] = append(got[d.Collection], seqs(t, d.Events)...)
	}
	if g := got["todos"]; len(g) != 3 || g[0] != 4 || g[2] != 6 {
		t.Errorf("todos resumed with %v, want 4..6", g)
	}
	if g := got["notes"]; len(g) != 2 || g[0] != 1 {
		t.Errorf("notes resumed with %v, want 1..2", g)
	}

	// The lastEventId parameter carries a cursor to a new stream, as an app
	// does that opens a new EventSource with a fresh token.
	publishSeq(t, n, "demo", "todos", 7, 7)
	_, id = s.events(1)
	s.close()
	publishSeq(t, n, "demo", "todos", 8, 8)
	s = openStream(t, sseURL(n.URL, []string{"demo/todos"}, url.Values{"lastEventId": {id}}), bearer(token(t, time.Hour, "demo")))
	s.subscribed()
	evs, _ = s.events(1)
	wantSeqs(t, "lastEventId", evs, 8, 8)
}

// TestStreamRecoveredFalse: when history no longer holds the events after
// the cursor, the resume says recovered:false and goes on live.
func TestStreamRecoveredFalse(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: backplane.NewMemory(backplane.MemoryConfig{HistorySize: 2})})
	tok := token(t, time.Hour, "demo")
	u := sseURL(n.URL, []string{"demo/todos"}, url.Values{"token": {tok}})
	s := openStream(t, u, nil)
	s.subscribed()
	publishSeq(t, n, "demo", "todos", 1, 1)
	_, id := s.events(1)
	s.close()
	publishSeq(t, n, "demo", "todos", 2, 5) // 2 and 3 are trimmed
	s = openStream(t, u, http.Header{"Last-Event-Id": {id}})
	d := s.subscribed()
	if d.Recovered {
		t.Fatalf("resume past trimmed history: %+v, want recovered:false", d)
	}
	publishSeq(t, n, "demo", "todos", 6, 6)
	evs, id := s.events(1)
	wantSeqs(t, "after recovered:false", evs, 6, 6)
	c, _ := sse.ParseCursor(id, 1)
	if got, _ := c.Since(backplane.Stream{Project: "demo", Collection: "todos"}); got != evs[0].Offset {
		t.Errorf("cursor at %q, want %q", got, evs[0].Offset)
	}
}

// TestStreamEnds checks each way the engine ends a stream: token expiry
// (an error event, code unauthorized), drain, and a client that stops
// reading (the slow-consumer close).
func TestStreamEnds(t *testing.T) {
	t.Run("token expiry", func(t *testing.T) {
		n := wstest.StartNode(t, wstest.NodeConfig{})
		s := openStream(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer(token(t, 3*time.Second, "demo"))) // exp is in whole seconds: 2 to 3s
		s.subscribed()
		msgs := s.ended()
		if len(msgs) != 1 || msgs[0].Event != "error" {
			t.Fatalf("before the end: %+v, want one error event", msgs)
		}
		var d struct{ Op, Code, Message string }
		if err := json.Unmarshal([]byte(msgs[0].Data), &d); err != nil || d.Code != "unauthorized" || !strings.Contains(d.Message, "expired") {
			t.Errorf("error data %s", msgs[0].Data)
		}
		n.AwaitReleased(t, n.Hub.Connections)
		awaitMetric(t, n, "syncgate_disconnects_total", "code", "4009")
	})
	t.Run("drain", func(t *testing.T) {
		n := wstest.StartNode(t, wstest.NodeConfig{})
		tok := token(t, time.Hour, "demo")
		s := openStream(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer(tok))
		s.subscribed()
		publishSeq(t, n, "demo", "todos", 1, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Hub.Drain(ctx, 0); err != nil {
			t.Fatal(err)
		}
		msgs := s.ended()
		if len(msgs) != 1 || msgs[0].Event != "events" {
			t.Fatalf("before the end: %+v, want the queued event", msgs)
		}
		if s.r.comments == 0 {
			t.Error("no comment said why the stream ended")
		}
		awaitMetric(t, n, "syncgate_disconnects_total", "code", "1012")
		for _, accept := range []string{"", "text/event-stream"} {
			resp, err := func() (*http.Response, error) {
				req, _ := http.NewRequest(http.MethodGet, sseURL(n.URL, []string{"demo/todos"}, nil), nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				if accept != "" {
					req.Header.Set("Accept", accept)
				}
				return http.DefaultClient.Do(req)
			}()
			switch {
			case accept == "" && (err != nil || resp.StatusCode != 503):
				t.Errorf("curl-like request to a draining node: %v %v, want 503", resp, err)
			case accept != "" && err == nil:
				t.Errorf("EventSource request to a draining node: %d, want a network error", resp.StatusCode)
			}
			if err == nil {
				resp.Body.Close()
			}
		}
	})
	t.Run("client stops reading", func(t *testing.T) {
		n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxQueueBytes: 256 << 10, WriteTimeout: 300 * time.Millisecond},
			Backplane: backplane.NewMemory(backplane.MemoryConfig{HistorySize: 10})})
		resp, cancel := get(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer(token(t, time.Hour, "demo")))
		defer cancel()
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// The body is never read: the socket's buffers fill, then the
		// queue or the write deadline ends the stream.
		big := wstest.Doc("demo", "todos", 1)
		big.Document = json.RawMessage(`"` + strings.Repeat("x", 100<<10) + `"`)
		big.Timestamp = time.Now()
		done := make(chan struct{})
		go func() { // publishes until the stream is closed
			defer close(done)
			for n.Hub.Connections() != 0 {
				if _, err := n.BP.Publish(context.Background(), []syncgate.Event{big}); err != nil {
					return
				}
			}
		}()
		n.AwaitReleased(t, n.Hub.Connections)
		<-done
		if got := n.Metric(t, "syncgate_slow_consumer_disconnects_total", "transport", "sse"); got != 1 {
			t.Errorf("syncgate_slow_consumer_disconnects_total{transport=sse} = %v, want 1", got)
		}
		awaitMetric(t, n, "syncgate_disconnects_total", "code", "4008")
	})
}
