package sse_test

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

func redisNodes(t *testing.T, n int) []*wstest.Node {
	t.Helper()
	rs := redistest.Start(t)
	nodes := make([]*wstest.Node, n)
	for i := range nodes {
		bp, err := backplane.NewRedis(backplane.RedisConfig{URL: rs.URL(), Logger: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	}
	return nodes
}

// TestStreamResumeOnAnotherNode: while events are published to both
// nodes, a stream on node A is drained away mid-flow and resumed on node B
// with its Last-Event-ID: every subscription gets every event once, in
// order.
func TestStreamResumeOnAnotherNode(t *testing.T) {
	nodes := redisNodes(t, 2)
	a, b := nodes[0], nodes[1]
	tok := token(t, time.Hour, "demo")
	u := func(n *wstest.Node) string {
		return sseURL(n.URL, []string{"demo/todos", "demo/*"}, url.Values{"token": {tok}})
	}
	s := openStream(t, u(a), nil)
	s.subscribed()
	s.subscribed()

	// Events 1..100 are published while A streams, 101..120 while the
	// client is away, 121..150 while B replays: live, history and the seam.
	const total = 150 // per collection
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	publish := func(from, to int) {
		defer wg.Done()
		for i := from; i <= to; i++ {
			n := nodes[i%2]
			for _, c := range []string{"todos", "notes"} {
				if _, err := n.BP.Publish(context.Background(), []syncgate.Event{stamp(wstest.Doc("demo", c, i))}); err != nil {
					errs <- err
					return
				}
			}
		}
	}
	wg.Add(1)
	go publish(1, 100)
	got := map[string][]int{}
	var id string
	add := func(m message) {
		d := parseEvents(t, m)
		for _, ev := range d.Events {
			key := d.Collection
			if key == "*" {
				key = "*" + ev.Collection
			}
			got[key] = append(got[key], wstest.Seq(t, ev))
		}
		id = m.ID
	}
	read := func(s *stream) { add(s.next()) }
	for len(got["todos"]) < total/3 {
		read(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Hub.Drain(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for _, m := range s.ended() { // what A flushed before it closed
		add(m)
	}
	wg.Wait()
	wg.Add(1)
	publish(101, 120)
	wg.Add(1)
	go publish(121, total)
	s = openStream(t, u(b), http.Header{"Last-Event-Id": {id}})
	if x, y := s.subscribed(), s.subscribed(); !x.Recovered || !y.Recovered {
		t.Fatalf("resume on B not recovered: %+v %+v", x, y)
	}
	for len(got["todos"]) < total || len(got["*todos"]) < total || len(got["*notes"]) < total {
		read(s)
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, k := range []string{"todos", "*todos", "*notes"} {
		seq := got[k]
		if len(seq) != total {
			t.Errorf("%s: %d events, want %d", k, len(seq), total)
		}
		for i, v := range seq {
			if v != i+1 {
				t.Fatalf("%s: event %d is seq %d (gap or duplicate): %v", k, i, v, seq)
			}
		}
	}
}

func stamp(ev syncgate.Event) syncgate.Event {
	ev.Timestamp = time.Now().UTC()
	return ev
}
