package ws_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wstest"
)

// eventually polls cond until it holds or the wait ends.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wstest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestResume(t *testing.T) {
	bp := backplane.NewMemory(backplane.MemoryConfig{HistorySize: 5})
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	tok := token(t, "u1", "p")
	var offs []string
	for i := 1; i <= 8; i++ {
		offs = append(offs, n.Publish(t, wstest.Doc("p", "c", i))...)
	}
	tests := []struct {
		name      string
		since     string
		recovered bool
		replay    []int
	}{
		{"inside history", offs[4], true, []int{6, 7, 8}},
		{"at the head", offs[7], true, nil},
		{"oldest kept boundary", offs[2], true, []int{4, 5, 6, 7, 8}},
		{"trimmed", offs[1], false, nil},
		{"other epoch", "mdeadbeef0000:3-0", false, nil},
		{"from the future", strings.Split(offs[0], ":")[0] + ":99-0", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
			s := c.Subscribe("s", "p", "c", tt.since)
			if s.Recovered != tt.recovered || s.Offset != offs[7] {
				t.Fatalf("subscribed %s, want recovered=%v offset %s", s.Raw, tt.recovered, offs[7])
			}
			var got []int
			if len(tt.replay) > 0 {
				for _, ev := range c.Events(len(tt.replay)) {
					got = append(got, wstest.Seq(t, ev))
				}
			}
			if !equalInts(got, tt.replay) {
				t.Fatalf("replayed %v, want %v", got, tt.replay)
			}
			// Then live, with nothing else in between.
			n.Publish(t, wstest.Doc("p", "c2", 0)) // another stream: not delivered
			c.Send(`{"op":"ping","id":"x"}`)
			c.Expect("pong")
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type seqDoc struct {
	Pub int `json:"pub"`
	Seq int `json:"seq"`
}

// TestConcurrentPublishersOrderAndSeam publishes from three goroutines
// while clients join, one resuming from an old offset: every client sees
// every event once, in offset order, and each publisher's events in its
// own order, with no gap or duplicate where replay meets live delivery.
func TestConcurrentPublishersOrderAndSeam(t *testing.T) {
	const publishers, perPublisher, batch = 3, 400, 20
	bp := backplane.NewMemory(backplane.MemoryConfig{HistorySize: 10000})
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	tok := token(t, "u1", "p")

	early := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	early.Subscribe("s", "p", "c", "")
	first := n.Publish(t, wstest.Doc("p", "c", -1))[0]

	var wg sync.WaitGroup
	started := make(chan struct{})
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perPublisher; j += batch {
				var evs []syncgate.Event
				for k := j; k < j+batch; k++ {
					doc, _ := json.Marshal(seqDoc{p, k})
					evs = append(evs, syncgate.Event{Type: "insert", Project: "p", Collection: "c", Document: doc})
				}
				n.Publish(t, evs...)
				if p == 0 && j == 5*batch {
					close(started)
				}
			}
		}()
	}
	<-started
	late := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	if s := late.Subscribe("s", "p", "c", first); !s.Recovered {
		t.Fatal("late subscriber not recovered")
	}
	wg.Wait()

	for name, c := range map[string]*wstest.Client{"early": early, "late": late} {
		var evs []syncgate.Event
		if name == "early" {
			evs = c.Events(1 + publishers*perPublisher)[1:] // after the marker event
		} else {
			evs = c.Events(publishers * perPublisher)
		}
		checkOrder(t, name, evs, publishers, perPublisher)
	}
}

func checkOrder(t *testing.T, name string, evs []syncgate.Event, publishers, per int) {
	t.Helper()
	next := make([]int, publishers)
	var prev backplane.Offset
	for i, ev := range evs {
		off, err := backplane.ParseOffset(ev.Offset)
		if err != nil {
			t.Fatalf("%s: event %d: %v", name, i, err)
		}
		if i > 0 && !prev.Less(off) {
			t.Fatalf("%s: event %d offset %s not after %s", name, i, ev.Offset, prev)
		}
		prev = off
		var d seqDoc
		if err := json.Unmarshal(ev.Document, &d); err != nil {
			t.Fatalf("%s: event %d document %s", name, i, ev.Document)
		}
		if d.Seq != next[d.Pub] {
			t.Fatalf("%s: publisher %d: got seq %d, want %d (gap, duplicate or reorder)", name, d.Pub, d.Seq, next[d.Pub])
		}
		next[d.Pub]++
	}
	for p, got := range next {
		if got != per {
			t.Fatalf("%s: publisher %d: %d events, want %d", name, p, got, per)
		}
	}
}

func TestSlowConsumerClosedHealthyServed(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxQueueBytes: 2 << 20, WriteTimeout: 20 * time.Second}})
	tok := token(t, "u1", "p")
	healthy := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	healthy.Subscribe("s", "p", "c", "")
	slow := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok, NoRead: true})
	slow.Send(`{"op":"subscribe","id":"s","project":"p","collection":"c"}`)
	eventually(t, "two subscriptions", func() bool { return testutilCount(t, n, "syncgate_subscriptions") == 2 })

	// Publish until the stalled client overflows (bounded: 200 batches of
	// 800 KiB), while the healthy client keeps reading.
	big := strings.Repeat("x", 16<<10)
	total := 0
	for b := 0; b < 200 && testutilCount(t, n, "syncgate_slow_consumer_disconnects_total") == 0; b++ {
		var evs []syncgate.Event
		for k := 0; k < 50; k++ {
			ev := wstest.Doc("p", "c", total)
			ev.OldDocument = json.RawMessage(`"` + big + `"`)
			evs = append(evs, ev)
			total++
		}
		n.Publish(t, evs...)
	}
	if testutilCount(t, n, "syncgate_slow_consumer_disconnects_total") != 1 {
		t.Fatalf("no slow-consumer disconnect after %d events", total)
	}
	for i, ev := range healthy.Events(total) {
		if wstest.Seq(t, ev) != i {
			t.Fatalf("healthy client: event %d has seq %d", i, wstest.Seq(t, ev))
		}
	}
	// Reading now drains what the kernel buffered, then the close 4008
	// (it used to be a cut connection when the write deadline hit first).
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	var err error
	for err == nil {
		_, _, err = slow.WS.Read(ctx)
	}
	if ctx.Err() != nil {
		t.Fatal("slow client was not disconnected")
	}
	if code := websocketCode(err); code != 4008 {
		t.Fatalf("slow client ended without the 4008 frame: %v", err)
	}
	eventually(t, "the 4008 counted", func() bool { return n.Metric(t, "syncgate_disconnects_total", "code", "4008") == 1 })
	eventually(t, "connections gauge back to 1", func() bool { return testutilCount(t, n, "syncgate_connections") == 1 })
}

func TestDrainFlushesThenCloses1012(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	tok := token(t, "u1", "p")
	var clients []*wstest.Client
	for i := 0; i < 5; i++ {
		c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
		c.Subscribe("s", "p", "c", "")
		clients = append(clients, c)
	}
	var evs []syncgate.Event
	for i := 0; i < 100; i++ {
		evs = append(evs, wstest.Doc("p", "c", i))
	}
	n.Publish(t, evs...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.Hub.Drain(ctx, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("drain of 5 clients over 500ms took only %s: closes not spread", d)
	}
	for i, c := range clients {
		if got := c.Events(100); wstest.Seq(t, got[99]) != 99 {
			t.Fatalf("client %d: last event %d", i, wstest.Seq(t, got[99]))
		}
		if code := c.Closed(); code != 1012 {
			t.Fatalf("client %d closed with %d, want 1012", i, code)
		}
	}
	if _, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: tok}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("dial while draining: %v, want HTTP 503", err)
	}
}

// TestReplayLargerThanQueue resumes a client whose missed history is many
// times its queue bound: replay is paced by the writer, so it catches up
// instead of being closed as a slow consumer again and again.
func TestReplayLargerThanQueue(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxQueueBytes: 128 << 10}})
	pad := json.RawMessage(`"` + strings.Repeat("x", 8<<10) + `"`)
	var offs []string
	for b := 0; b < 10; b++ {
		var evs []syncgate.Event
		for k := 0; k < 10; k++ {
			ev := wstest.Doc("p", "c", b*10+k)
			ev.OldDocument = pad
			evs = append(evs, ev)
		}
		offs = append(offs, n.Publish(t, evs...)...)
	}
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p")})
	if s := c.Subscribe("s", "p", "c", offs[0]); !s.Recovered {
		t.Fatal("not recovered")
	}
	for i, ev := range c.Events(99) {
		if wstest.Seq(t, ev) != i+1 {
			t.Fatalf("replayed event %d has seq %d", i, wstest.Seq(t, ev))
		}
	}
	n.Publish(t, wstest.Doc("p", "c", 100))
	if got := c.Events(1); wstest.Seq(t, got[0]) != 100 {
		t.Fatalf("live after replay: %+v", got)
	}
	if got := testutilCount(t, n, "syncgate_slow_consumer_disconnects_total"); got != 0 {
		t.Fatalf("%v slow-consumer disconnects during replay", got)
	}
}
