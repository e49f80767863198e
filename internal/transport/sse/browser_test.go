package sse_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/transport/sse"
	"github.com/syncgate/syncgate/internal/wstest"
)

// switchProxy is a load balancer in front of gateway nodes: it serves the
// test page, forwards everything else to the current node, and records
// the Last-Event-ID of every stream request.
type switchProxy struct {
	target   atomic.Pointer[url.URL]
	mu       sync.Mutex
	lastIDs  []string
	statuses []int // of the stream requests that ended
}

func (p *switchProxy) to(n *wstest.Node) {
	u, _ := url.Parse(n.URL)
	p.target.Store(u)
}

func (p *switchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/page" {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(eventSourcePage))
		return
	}
	if r.URL.Path == "/v1/sse" {
		p.mu.Lock()
		p.lastIDs = append(p.lastIDs, r.Header.Get("Last-Event-ID"))
		p.mu.Unlock()
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(p.target.Load()) },
		FlushInterval: -1,
		ErrorLog:      nil,
	}
	sw := &statusWriter{ResponseWriter: w}
	rp.ServeHTTP(sw, r)
	if r.URL.Path == "/v1/sse" {
		p.mu.Lock()
		p.statuses = append(p.statuses, sw.status)
		p.mu.Unlock()
	}
}

// statusWriter records the status of a proxied answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func (p *switchProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lastIDs...)
}

// TestEventSourceInChromium: a plain `new EventSource(url)` in Chromium
// receives the subscribed and events messages of two subscriptions; when
// the server drops the connection, the browser's own reconnect (with
// Last-Event-ID, through a load balancer that now sends it to the other
// node) resumes both with no gap and no duplicate.
func TestEventSourceInChromium(t *testing.T) {
	rs := redistest.Start(t)
	var nodes []*wstest.Node
	for range 2 {
		bp, err := backplane.NewRedis(backplane.RedisConfig{URL: rs.URL(), Logger: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, wstest.StartNode(t, wstest.NodeConfig{Backplane: bp, SSE: sse.Config{Retry: 100 * time.Millisecond}}))
	}
	a, b := nodes[0], nodes[1]
	p := &switchProxy{}
	p.to(a)
	lb := httptest.NewServer(p)
	t.Cleanup(lb.Close) // after the browser's cleanup, which ends its stream

	tok := token(t, time.Hour, "demo")
	stream := "/v1/sse?" + url.Values{"sub": {"demo/todos", "demo/notes"}, "token": {tok}}.Encode()
	br := startChromium(t, lb.URL+"/page#"+url.QueryEscape(stream))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type got struct {
		Event, ID string
		Data      struct {
			Op, Collection string
			Recovered      bool
			Events         []struct{ Document int }
		}
	}
	var msgs []got
	if err := br.eval(ctx, `waitFor(() => got.filter(m => m.event === 'subscribed').length >= 2)`, &msgs); err != nil {
		t.Fatal(err)
	}
	publishSeq(t, a, "demo", "todos", 1, 3)
	publishSeq(t, b, "demo", "notes", 1, 2)
	count := `got.filter(m => m.event === 'events').reduce((n, m) => n + m.data.events.length, 0)`
	if err := br.eval(ctx, `waitFor(() => `+count+` >= 5)`, &msgs); err != nil {
		t.Fatal(err)
	}

	// The balancer now sends new requests to B, and the connection drops.
	p.to(b)
	lb.CloseClientConnections()
	publishSeq(t, a, "demo", "todos", 4, 6) // whether before or after the reconnect
	publishSeq(t, b, "demo", "notes", 3, 3)
	if err := br.eval(ctx, `waitFor(() => `+count+` >= 9)`, &msgs); err != nil {
		t.Fatal(err)
	}
	var opens int
	if err := br.eval(ctx, `window.opens`, &opens); err != nil {
		t.Fatal(err)
	}
	if opens < 2 {
		t.Errorf("EventSource opened %d times, want a reconnect", opens)
	}
	seq := map[string][]int{}
	for _, m := range msgs {
		switch m.Event {
		case "subscribed":
			if !m.Data.Recovered {
				t.Errorf("subscribed %+v: recovered false", m.Data)
			}
		case "events":
			for _, ev := range m.Data.Events {
				seq[m.Data.Collection] = append(seq[m.Data.Collection], ev.Document)
			}
		}
	}
	for c, n := range map[string]int{"todos": 6, "notes": 3} {
		if len(seq[c]) != n {
			t.Errorf("%s: %v, want 1..%d", c, seq[c], n)
			continue
		}
		for i, v := range seq[c] {
			if v != i+1 {
				t.Errorf("%s: %v, want 1..%d (gap or duplicate)", c, seq[c], n)
				break
			}
		}
	}
	reqs := p.requests()
	if len(reqs) < 2 || reqs[0] != "" || reqs[len(reqs)-1] == "" {
		t.Errorf("stream requests' Last-Event-ID: %q, want none first and the cursor on the reconnect", reqs)
	}
}

// TestEventSourceTokenExpiryInChromium: at token expiry the browser gets
// the error event, its own reconnect with the expired token is refused
// (401) and the EventSource closes; a new EventSource with a fresh token
// and the lastEventId of the last message (EventSource itself has no such
// property: a MessageEvent has) resumes with no gap.
func TestEventSourceTokenExpiryInChromium(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{SSE: sse.Config{Retry: 100 * time.Millisecond}})
	p := &switchProxy{}
	p.to(n)
	lb := httptest.NewServer(p)
	t.Cleanup(lb.Close)
	br := startChromium(t, lb.URL+"/page")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The token is minted once the browser is up: exp is in whole seconds,
	// so it expires 2 to 3s from now.
	short := "/v1/sse?" + url.Values{"sub": {"demo/todos"}, "token": {token(t, 3*time.Second, "demo")}}.Encode()
	if err := br.eval(ctx, `connect(`+jsString(short)+`)`, nil); err != nil {
		t.Fatal(err)
	}
	if err := br.eval(ctx, `waitFor(() => got.length >= 1)`, nil); err != nil {
		t.Fatal(err)
	}
	publishSeq(t, n, "demo", "todos", 1, 1)
	if err := br.eval(ctx, `waitFor(() => got.some(m => m.event === 'events'))`, nil); err != nil {
		t.Fatal(err)
	}
	var code string
	if err := br.eval(ctx, `waitFor(() => es.readyState === EventSource.CLOSED).then(() => got.find(m => m.event === 'error').data.code)`, &code); err != nil {
		t.Fatal(err)
	}
	if code != "unauthorized" {
		t.Errorf("error event code %q, want unauthorized", code)
	}
	// The proxy records an answer once it is sent: the browser may have
	// seen it first.
	var statuses []int
	for deadline := time.Now().Add(10 * time.Second); len(statuses) < 2 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		p.mu.Lock()
		statuses = append(statuses[:0], p.statuses...)
		p.mu.Unlock()
	}
	if len(statuses) != 2 || statuses[0] != 200 || statuses[1] != 401 {
		t.Errorf("stream answers %v, want the stream's 200, then 401 for the browser's reconnect with the expired token", statuses)
	}
	publishSeq(t, n, "demo", "todos", 2, 3) // while the app has no stream
	fresh := "/v1/sse?" + url.Values{"sub": {"demo/todos"}, "token": {token(t, time.Hour, "demo")}}.Encode()
	var docs []int
	if err := br.eval(ctx, `connect(`+jsString(fresh)+` + '&lastEventId=' + encodeURIComponent(got[got.length - 1].id)),
		waitFor(() => got.filter(m => m.event === 'events').flatMap(m => m.data.events).length >= 3)
			.then(() => got.filter(m => m.event === 'events').flatMap(m => m.data.events).map(e => e.document))`, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 || docs[0] != 1 || docs[1] != 2 || docs[2] != 3 {
		t.Errorf("documents %v, want 1 2 3", docs)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
