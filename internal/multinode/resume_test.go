package multinode

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestResumeAcrossNodes: a client that read up to X on node A resumes on
// node B with since X and gets every later event once, in order, then live
// ones, with publishing going on during the resume; from an offset that was
// trimmed it gets recovered:false.
func TestResumeAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 2, func(c *backplane.RedisConfig) { c.HistorySize = 500 })
	a, b := nodes[0], nodes[1]
	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
	for _, coll := range []string{"c", "*"} {
		t.Run(coll, func(t *testing.T) {
			ca := wstest.Dial(t, a.WSURL(), wstest.DialOptions{Token: tok})
			ca.Subscribe("1", "p1", coll, "")
			seq := 0
			pub := func(n int) {
				for i := 0; i < n; i++ {
					b.Publish(t, seqEvent("p1", "c", 0, seq, nil))
					seq++
				}
			}
			pub(10)
			first := ca.Events(10)
			last := first[9].Offset
			ca.WS.CloseNow()
			pub(50)
			// Keep publishing while the client resumes on B: the seam between
			// replay and live must have no gap and no duplicate.
			stop := make(chan struct{})
			pubErr := make(chan error, 1)
			var published atomic.Int64
			published.Store(int64(seq))
			go func() {
				for s := seq; ; s++ {
					select {
					case <-stop:
						pubErr <- nil
						return
					default:
					}
					if _, _, err := publish(a.URL, []syncgate.Event{seqEvent("p1", "c", 0, s, nil)}); err != nil {
						pubErr <- err
						return
					}
					published.Store(int64(s + 1))
				}
			}()
			stopped := false
			stopPub := func() error {
				if stopped {
					return nil
				}
				stopped = true
				close(stop)
				return <-pubErr
			}
			t.Cleanup(func() { _ = stopPub() })
			cb := wstest.Dial(t, b.WSURL(), wstest.DialOptions{Token: tok})
			f := cb.Subscribe("2", "p1", coll, last)
			if !f.Recovered {
				t.Fatalf("resume inside history: recovered=false")
			}
			got := readEvents(t, cb, 100)
			if err := stopPub(); err != nil {
				t.Fatalf("publisher: %v", err)
			}
			total := int(published.Load())
			got = append(got, cb.Events(total-10-len(got))...)
			checkOrdered(t, "resumed", got)
			for i, ev := range got {
				if d := docOf(t, ev); d.Seq != 10+i {
					t.Fatalf("resumed event %d has seq %d, want %d", i, d.Seq, 10+i)
				}
			}
		})
	}
	t.Run("beyond history", func(t *testing.T) {
		c := wstest.Dial(t, a.WSURL(), wstest.DialOptions{Token: tok})
		f := c.Subscribe("1", "p1", "old", "")
		start := f.Offset
		evs := make([]syncgate.Event, 0, 600)
		for i := 0; i < 600; i++ {
			evs = append(evs, seqEvent("p1", "old", 0, i, nil))
		}
		b.Publish(t, evs[:300]...)
		b.Publish(t, evs[300:]...)
		c2 := wstest.Dial(t, b.WSURL(), wstest.DialOptions{Token: tok})
		f2 := c2.Subscribe("2", "p1", "old", start)
		if f2.Recovered {
			t.Fatal("resume from a trimmed offset said recovered:true")
		}
		// Live continues after the head.
		b.Publish(t, seqEvent("p1", "old", 0, 600, nil))
		if got := c2.Events(1); docOf(t, got[0]).Seq != 600 {
			t.Fatalf("after recovered:false got %+v", got)
		}
	})
}

// TestRedisRestartWithoutPersistence: Redis restarts empty under live
// subscribers. They get a fresh `subscribed` with recovered:false and then
// the new events; a resume from an old offset says recovered:false; no
// silent gap anywhere.
func TestRedisRestartWithoutPersistence(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 2, fastProbe)
	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
	c := wstest.Dial(t, nodes[0].WSURL(), wstest.DialOptions{Token: tok})
	c.Subscribe("1", "p1", "c", "")
	for i := 0; i < 5; i++ {
		nodes[1].Publish(t, seqEvent("p1", "c", 0, i, nil))
	}
	before := c.Events(5)
	srv.Kill()
	srv.Restart()
	for _, n := range nodes {
		await(t, 15*time.Second, "node ready after the restart", func() bool { return n.BP.(backplane.Checker).Ready() == nil })
	}
	for i := 5; i < 10; i++ {
		nodes[1].Publish(t, seqEvent("p1", "c", 0, i, nil))
	}
	// The client is told first: a subscribed(recovered:false) comes before
	// any event of the new epoch. Events published while the node was
	// reconnecting are replayed after it or covered by its head (the
	// client reloads its state at that point).
	for told := false; !told; {
		f := c.Next()
		if f.Op != "subscribed" {
			t.Fatalf("after the restart, before being told: %s", f.Raw)
		}
		if f.Recovered {
			t.Fatalf("subscribed after a data loss with recovered:true")
		}
		told = true
	}
	// Then live and complete: whatever of 5..9 follows, then 10 and 11.
	nodes[1].Publish(t, seqEvent("p1", "c", 0, 10, nil), seqEvent("p1", "c", 0, 11, nil))
	next := 5
	for next < 12 {
		f := c.Next()
		switch f.Op {
		case "subscribed":
			if f.Recovered {
				t.Fatalf("subscribed with recovered:true")
			}
		case "events":
			for _, ev := range f.Events {
				d := docOf(t, ev)
				if d.Seq < next || (next >= 10 && d.Seq != next) {
					t.Fatalf("got seq %d, want %d or (before 10) later", d.Seq, next)
				}
				next = d.Seq + 1
			}
		default:
			t.Fatalf("unexpected frame %s", f.Raw)
		}
	}
	c2 := wstest.Dial(t, nodes[1].WSURL(), wstest.DialOptions{Token: tok})
	if f := c2.Subscribe("1", "p1", "c", before[4].Offset); f.Recovered {
		t.Fatalf("resume from before the restart said recovered:true")
	}
}

func fastProbe(c *backplane.RedisConfig) {
	c.ProbeInterval, c.ProbeTimeout = 300*time.Millisecond, time.Second
	c.ReconnectMin, c.ReconnectMax = 20*time.Millisecond, 300*time.Millisecond
}

// readEvents reads events frames until at least n events arrived.
func readEvents(t testing.TB, c *wstest.Client, n int) []syncgate.Event {
	t.Helper()
	var evs []syncgate.Event
	for len(evs) < n {
		evs = append(evs, c.Expect("events").Events...)
	}
	return evs
}
