package ws_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestResetDuringReplay: a Reset that arrives between History and live
// delivery still reaches the client as recovered:false before later events.
func TestResetDuringReplay(t *testing.T) {
	l := wstest.NewLossy()
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: l})
	off := n.Publish(t, wstest.Doc("p", "c", 0))
	var lost string
	hook := func(s backplane.Stream) {
		lost = l.LoseOne(t, s, 1)
		l.Reset(s, lost)
	}
	l.OnNextHistory(hook)
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p")})
	if f := c.Subscribe("s", "p", "c", off[0]); !f.Recovered {
		t.Fatalf("subscribed %s", f.Raw)
	}
	n.Publish(t, wstest.Doc("p", "c", 2))
	if f := c.Expect("subscribed"); f.Recovered || f.Offset != lost {
		t.Fatalf("after the reset got %s, want recovered:false at %s", f.Raw, lost)
	}
	if got := c.Events(1); wstest.Seq(t, got[0]) != 2 {
		t.Fatalf("then %+v", got)
	}
}

// TestResetBehindSubscriptionIgnored: a Reset to a head the subscription
// has already passed neither rewinds it (which would duplicate events) nor
// tells the client to reload.
func TestResetBehindSubscriptionIgnored(t *testing.T) {
	l := wstest.NewLossy()
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: l})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p")})
	c.Subscribe("s", "p", "c", "")
	offs := n.Publish(t, wstest.Doc("p", "c", 1), wstest.Doc("p", "c", 2))
	c.Events(2)
	l.Reset(backplane.Stream{Project: "p", Collection: "c"}, offs[0])
	n.Publish(t, wstest.Doc("p", "c", 3))
	if got := c.Events(1); wstest.Seq(t, got[0]) != 3 {
		t.Fatalf("after a stale reset got %+v", got)
	}
}

// TestPingDuringLongReplay: the server's keep-alive ping is answered while a
// long replay is being paced to a slowly reading client, because the reader
// keeps reading; the client catches up on everything.
func TestPingDuringLongReplay(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxQueueBytes: 256 << 10, PingInterval: 50 * time.Millisecond, WriteTimeout: 2 * time.Second}})
	pad := `"` + strings.Repeat("x", 32<<10) + `"` // 12.8 MB in all: more than socket buffers hold
	var first string
	for b := 0; b < 16; b++ {
		var evs []syncgate.Event
		for k := 0; k < 25; k++ {
			ev := wstest.Doc("p", "c", b*25+k)
			ev.OldDocument = []byte(pad)
			evs = append(evs, ev)
		}
		if offs := n.Publish(t, evs...); b == 0 {
			first = offs[0]
		}
	}
	// The client reads the socket itself, slowly, so the replay takes
	// many ping intervals and the server's pongs depend on its reader.
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
	if f := read(); f.Op != "subscribed" {
		t.Fatalf("got %s", f.Op)
	}
	for i := 1; i < 400; {
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
		time.Sleep(20 * time.Millisecond)
	}
	c.Send(`{"op":"ping","id":"end"}`)
	if f := read(); f.Op != "pong" {
		t.Fatalf("got %s, want pong", f.Op)
	}
}

// flaky fails the first Subscribe, as the Redis backplane does while Redis
// is known to be down.
type flaky struct {
	*backplane.Memory
	failed atomic.Bool
}

func (f *flaky) Subscribe(ctx context.Context, s backplane.Stream) error {
	if f.failed.CompareAndSwap(false, true) {
		return backplane.ErrUnavailable
	}
	return f.Memory.Subscribe(ctx, s)
}

// TestSubscribeBackplaneFailure: a subscribe the backplane refuses answers
// error internal, leaves nothing behind, and the same subscribe works once
// the backplane does.
func TestSubscribeBackplaneFailure(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: &flaky{Memory: backplane.NewMemory(backplane.MemoryConfig{})}})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p")})
	c.Send(`{"op":"subscribe","id":"s","project":"p","collection":"c"}`)
	if f := c.Expect("error"); f.Code != "internal" || !strings.Contains(f.Message, "backplane unavailable") {
		t.Fatalf("got %s", f.Raw)
	}
	if got := testutilCount(t, n, "syncgate_subscriptions"); got != 0 {
		t.Fatalf("subscriptions gauge %v after a failed subscribe", got)
	}
	c.Subscribe("s", "p", "c", "")
	n.Publish(t, wstest.Doc("p", "c", 1))
	c.Events(1)
}
