package socketio_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/socketio"
	"github.com/syncgate/syncgate/internal/wstest"
)

// padded returns n documents of p/c numbered from first, each about size
// bytes on the wire.
func padded(first, n, size int) []syncgate.Event {
	pad := `"` + strings.Repeat("x", size) + `"`
	evs := make([]syncgate.Event, n)
	for i := range evs {
		evs[i] = wstest.Doc("p", "c", first+i)
		evs[i].OldDocument = []byte(pad)
	}
	return evs
}

// subscribed connects to n, subscribes to p/c and returns the session's pid
// and recovery state.
func subscribed(t *testing.T, n *node, tok string) (pid, state string) {
	t.Helper()
	c := dial(t, n, dialOpts{})
	a := c.mustConnect(map[string]string{"token": tok})
	c.expectAck(c.emit(true, "subscribe", map[string]string{"project": "p", "collection": "c"}))
	state = c.expectEvent("subscribed").State()
	c.ws.CloseNow()
	return a.PID, state
}

// readSeqs reads document events numbered from *next on, in order, once
// each, and returns the state of the last one. It stops after event until-1
// or, when until < 0, when the connection closes, returning its close code.
func readSeqs(t *testing.T, c *client, next *int, until int) (state string, code websocket.StatusCode) {
	t.Helper()
	for until < 0 || *next < until {
		var f frame
		select {
		case g, ok := <-c.frames:
			if !ok {
				if until >= 0 {
					t.Fatalf("connection ended at event %d: %v", *next, c.err)
				}
				return state, websocket.CloseStatus(c.err)
			}
			f = g
		case <-time.After(wait):
			t.Fatalf("timed out waiting for event %d", *next)
		}
		var args []json.RawMessage
		var name string
		if f.EIO != '4' || f.SIO != '2' || json.Unmarshal(f.Data, &args) != nil || len(args) < 2 ||
			json.Unmarshal(args[0], &name) != nil || name != syncgate.TypeDocumentUpdated {
			t.Fatalf("got %.80q, want event %d", f.Raw, *next)
		}
		e := event{Name: name, Args: args[1:]}
		var doc struct{ Document int }
		e.Decode(t, 0, &doc)
		if doc.Document != *next {
			t.Fatalf("event %d, want %d (in order, once each)", doc.Document, *next)
		}
		*next++
		state = e.State()
	}
	return state, 0
}

// TestRecoveryLongerThanQueue: a client that missed more history than its
// queue bound recovers without being cut as a slow consumer, receives it
// in order, once each, and the live events published meanwhile after it.
func TestRecoveryLongerThanQueue(t *testing.T) {
	n := startNode(t, nil, func(c *socketio.Config) { c.MaxQueueBytes = 64 << 10 })
	tok := tokenFor(t, "u1", []string{"p"}, nil, nil)
	pid, state := subscribed(t, n, tok)
	const missed, live = 300, 20
	n.Publish(t, padded(0, missed, 2<<10)...) // about ten queue bounds

	c, a := reconnect(t, n, tok, pid, state)
	if a.PID != pid {
		t.Fatalf("pid %s, want %s (recovered)", a.PID, pid)
	}
	n.Publish(t, padded(missed, live, 2<<10)...) // while the replay is under way
	next := 0
	readSeqs(t, c, &next, missed+live)
	c.noFrame(50 * time.Millisecond)
}
