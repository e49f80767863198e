package ws_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wstest"
)

// countingHistory counts the events History hands out.
type countingHistory struct {
	*backplane.Memory
	events atomic.Int64
}

func (c *countingHistory) History(ctx context.Context, s backplane.Stream, since string, page backplane.Page) (backplane.History, error) {
	h, err := c.Memory.History(ctx, s, since, page)
	c.events.Add(int64(len(h.Events)))
	return h, err
}

// TestReplayReadAsClientReads: a resume over history many times the
// connection's queue bound reads that history from the backplane only as
// the client reads it: at any time the events read and not yet written to
// the socket stay within the queue bound and a page, instead of the whole
// history held at subscribe. The client still gets every event, in order.
func TestReplayReadAsClientReads(t *testing.T) {
	bp := &countingHistory{Memory: backplane.NewMemory(backplane.MemoryConfig{})}
	const queue, size, total = 256 << 10, 32 << 10, 200
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: bp, Hub: hub.Config{MaxQueueBytes: queue, WriteTimeout: 5 * time.Second}})
	pad := `"` + strings.Repeat("x", size) + `"`
	first := n.Publish(t, wstest.Doc("p", "c", 0))[0]
	for b := 0; b < total/25; b++ {
		var evs []syncgate.Event
		for k := 0; k < 25; k++ {
			ev := wstest.Doc("p", "c", 1+b*25+k)
			ev.OldDocument = []byte(pad)
			evs = append(evs, ev)
		}
		n.Publish(t, evs...)
	}
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p"), NoRead: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read := func() wstest.Frame {
		t.Helper()
		_, data, err := c.WS.Read(ctx)
		if err != nil {
			t.Fatalf("connection lost mid-replay: %v", err)
		}
		var f wstest.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := read(); f.Op != "ready" {
		t.Fatalf("got %s", f.Op)
	}
	c.Send(map[string]any{"op": "subscribe", "id": "s", "project": "p", "collection": "c", "since": first})
	if f := read(); f.Op != "subscribed" || !f.Recovered {
		t.Fatalf("got %s", f.Raw)
	}
	// Half the queue pulled, a page of half the queue beside it, and a
	// batch being written: 1.5 queue bounds of events at most; the bound
	// asserted leaves one more for the counters' sampling.
	const bound = 5 * queue / 2 / size
	worst := int64(0)
	for i := 1; i <= total; {
		f := read()
		if f.Op != "events" {
			t.Fatalf("got %s mid-replay", f.Op)
		}
		for _, ev := range f.Events {
			if wstest.Seq(t, ev) != i {
				t.Fatalf("event seq %d, want %d", wstest.Seq(t, ev), i)
			}
			i++
		}
		written := int64(testutil.ToFloat64(n.Metrics.EventsDelivered))
		ahead := bp.events.Load() - written
		worst = max(worst, ahead)
		if ahead > bound {
			t.Fatalf("after %d events written, %d read from history: %d held, bound %d", written, bp.events.Load(), ahead, bound)
		}
	}
	t.Logf("at most %d events read ahead of the socket (bound %d, history %d)", worst, bound, total)
}
