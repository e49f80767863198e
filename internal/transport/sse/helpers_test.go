package sse_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/wstest"
)

// stream is one GET /v1/sse read the way curl -N reads it.
type stream struct {
	t      testing.TB
	resp   *http.Response
	r      *sseReader
	cancel context.CancelFunc
	msgs   chan message
	err    chan error
}

// sseURL is the stream URL of node base for subs (each "project/collection"
// or "project/collection@offset") with extra query parameters.
func sseURL(base string, subs []string, extra url.Values) string {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	q["sub"] = subs
	return base + "/v1/sse?" + q.Encode()
}

// get sends the request and returns the response, whatever its status.
func get(t testing.TB, u string, header http.Header) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return resp, cancel
}

// openStream opens a stream and fails the test unless it is a 200
// event-stream. Its messages are read on a goroutine that ends with the
// stream (closed at cleanup at the latest).
func openStream(t testing.TB, u string, header http.Header) *stream {
	t.Helper()
	resp, cancel := get(t, u, header)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	s := &stream{t: t, resp: resp, r: newSSEReader(resp.Body), cancel: cancel, msgs: make(chan message, 64), err: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := s.r.next()
			if err != nil {
				s.err <- err
				close(s.msgs)
				return
			}
			s.msgs <- m
		}
	}()
	t.Cleanup(func() { s.close(); <-done })
	return s
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next message; it fails the test when the stream ends
// or none arrives within 10s.
func (s *stream) next() message {
	s.t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			s.t.Fatalf("stream ended: %v", <-s.err)
		}
		return m
	case <-time.After(10 * time.Second):
		s.t.Fatal("no message within 10s")
	}
	return message{}
}

// ended waits for the end of the stream and returns the messages before it.
func (s *stream) ended() []message {
	s.t.Helper()
	var got []message
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				if err := <-s.err; !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					s.t.Logf("stream ended with %v", err)
				}
				s.err <- io.EOF
				return got
			}
			got = append(got, m)
		case <-timeout:
			s.t.Fatalf("stream did not end within 20s; got %+v", got)
		}
	}
}

type subscribedData struct {
	Op, Project, Collection, Offset string
	Recovered                       bool
}

func (s *stream) subscribed() subscribedData {
	s.t.Helper()
	m := s.next()
	var d subscribedData
	if m.Event != "subscribed" || json.Unmarshal([]byte(m.Data), &d) != nil || d.Op != "subscribed" {
		s.t.Fatalf("want a subscribed message, got %+v", m)
	}
	if !m.HasID {
		s.t.Errorf("subscribed message without an id: %+v", m)
	}
	return d
}

type eventsData struct {
	Op, Project, Collection string
	Events                  []syncgate.Event
}

func parseEvents(t testing.TB, m message) eventsData {
	t.Helper()
	var d eventsData
	if m.Event != "events" || json.Unmarshal([]byte(m.Data), &d) != nil || d.Op != "events" {
		t.Fatalf("want an events message, got %+v", m)
	}
	if !m.HasID {
		t.Fatalf("events message without an id: %+v", m)
	}
	return d
}

// events reads events messages until n events arrived; it returns them
// and the id of the last message.
func (s *stream) events(n int) ([]syncgate.Event, string) {
	s.t.Helper()
	var evs []syncgate.Event
	var id string
	for len(evs) < n {
		m := s.next()
		if m.Event == "subscribed" {
			s.t.Fatalf("unexpected %+v after %d of %d events", m, len(evs), n)
		}
		evs = append(evs, parseEvents(s.t, m).Events...)
		id = m.ID
	}
	if len(evs) != n {
		s.t.Fatalf("got %d events, want %d", len(evs), n)
	}
	return evs, id
}

// seqs are the sequence numbers of events made by wstest.Doc.
func seqs(t testing.TB, evs []syncgate.Event) []int {
	out := make([]int, len(evs))
	for i, ev := range evs {
		out[i] = wstest.Seq(t, ev)
	}
	return out
}

func publishSeq(t testing.TB, n *wstest.Node, project, collection string, from, to int) {
	t.Helper()
	var evs []syncgate.Event
	for i := from; i <= to; i++ {
		evs = append(evs, wstest.Doc(project, collection, i))
	}
	n.Publish(t, evs...)
}

func wantSeqs(t testing.TB, what string, evs []syncgate.Event, from, to int) {
	t.Helper()
	got := seqs(t, evs)
	if len(got) != to-from+1 {
		t.Fatalf("%s: seqs %v, want %d..%d", what, got, from, to)
	}
	for i, s := range got {
		if s != from+i {
			t.Fatalf("%s: seqs %v, want %d..%d", what, got, from, to)
		}
	}
}

func token(t testing.TB, ttl time.Duration, projects ...string) string {
	return wstest.Token(t, "u1", ttl, projects, nil, nil)
}

// awaitMetric waits until the counter with the label reaches 1 (a stream's
// end is counted after its session left the registry), and fails if it
// goes past.
func awaitMetric(t testing.TB, n *wstest.Node, name, label, value string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := n.Metric(t, name, label, value)
		if got == 1 {
			return
		}
		if got > 1 || time.Now().After(deadline) {
			t.Fatalf("%s{%s=%q} = %v, want 1", name, label, value, got)
		}
		time.Sleep(time.Millisecond)
	}
}
