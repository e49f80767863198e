package sse_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/transport/sse"
)

// eventSourcePage opens a plain EventSource on the URL in its fragment
// (connect opens another) and records every subscribed, events and error
// message it gets, with the lastEventId it had, in window.got; window.opens
// counts the opens.
const eventSourcePage = `<!doctype html><meta charset="utf-8"><title>sse</title><script>
window.got = []; window.opens = 0;
window.connect = (url) => {
  const es = new EventSource(url);
  window.es = es;
  es.onopen = () => { window.opens++; };
  for (const name of ['subscribed', 'events', 'error']) {
    es.addEventListener(name, (e) => { if (e.data !== undefined) window.got.push({event: name, id: e.lastEventId, data: JSON.parse(e.data)}); });
  }
};
if (location.hash.length > 1) connect(decodeURIComponent(location.hash.slice(1)));
window.waitFor = (pred) => new Promise((resolve) => {
  const check = () => { if (pred()) resolve(window.got); else setTimeout(check, 20); };
  check();
});
</script>`

// TestEncoderInChromium serves the encoder's messages to a real
// EventSource, drops the stream, and checks that the browser's own
// reconnect hands back the last id as Last-Event-ID.
func TestEncoderInChromium(t *testing.T) {
	subs := []sse.Subscription{{Stream: todos}, {Stream: users}}
	lastIDs := make(chan string, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(eventSourcePage))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		lastIDs <- r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		e := sse.NewEncoder(subs)
		e.Retry(50)
		if r.Header.Get("Last-Event-ID") == "" {
			e.Subscribed(0, off(todos, 1), true)
			e.Subscribed(1, off(users, 1), true)
			e.Events(0, off(todos, 2), []byte(`{"n":1}`))
			e.Events(1, off(users, 5), []byte(`{"n":2}`))
			_, _ = w.Write(e.Take()) // the handler returns: the stream ends
			return
		}
		e.Events(0, off(todos, 3), []byte(`{"n":3}`))
		e.Fail("unauthorized", "token expired")
		_, _ = w.Write(e.Take())
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close) // after the browser's cleanup, which ends its stream

	b := startChromium(t, srv.URL+"/page#"+srv.URL+"/stream")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var got []struct {
		Event, ID string
		Data      struct {
			Op, Code, Project string
			Events            []struct{ N int }
		}
	}
	if err := b.eval(ctx, `waitFor(() => got.length >= 5)`, &got); err != nil {
		t.Fatal(err)
	}
	if first := <-lastIDs; first != "" {
		t.Errorf("first request had Last-Event-ID %q", first)
	}
	var second string
	select {
	case second = <-lastIDs:
	case <-ctx.Done():
		t.Fatal("the browser did not reconnect")
	}
	if got[3].Event != "events" || second != got[3].ID || second == "" {
		t.Fatalf("reconnected with Last-Event-ID %q, want the id of the last message before the drop %+v", second, got[3])
	}
	c, err := sse.ParseCursor(second, 10)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := c.Since(todos); a != off(todos, 2) {
		t.Errorf("todos resumes from %q", a)
	}
	if u, _ := c.Since(users); u != off(users, 5) {
		t.Errorf("users resumes from %q", u)
	}
	if d := got[4].Data; got[4].Event != "events" || d.Op != "events" || d.Project != "demo" || len(d.Events) != 1 || d.Events[0].N != 3 {
		t.Errorf("after the reconnect: %+v", got[4])
	}
	if err := b.eval(ctx, `waitFor(() => got.length >= 6)`, &got); err != nil {
		t.Fatal(err)
	}
	if e := got[5]; e.Event != "error" || e.Data.Code != "unauthorized" || e.ID != got[4].ID {
		t.Errorf("error message %+v", e)
	}
}
