package socketio_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
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
	n := startNode(t, nil, func(c *nodeConfig) { c.MaxQueueBytes = 64 << 10 })
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

// TestResetDuringRecovery: a Reset that arrives while a recovery replays
// still closes the socket with 1012 once the replay is written, and the
// client's next recovery delivers the event this node lost.
func TestResetDuringRecovery(t *testing.T) {
	l := wstest.NewLossy()
	n := startNode(t, l, func(c *nodeConfig) { c.MaxQueueBytes = 64 << 10 })
	tok := tokenFor(t, "u1", []string{"p"}, nil, nil)
	pid, state := subscribed(t, n, tok)
	const missed = 100
	n.Publish(t, padded(0, missed, 2<<10)...)
	hook := func(s backplane.Stream) {
		l.Reset(s, l.LoseOne(t, s, missed)) // after History: during the replay
	}
	l.OnNextHistory(hook)

	c, a := reconnect(t, n, tok, pid, state)
	if a.PID != pid {
		t.Fatalf("pid %s, want %s (recovered)", a.PID, pid)
	}
	next := 0
	last, code := readSeqs(t, c, &next, -1)
	if code != 1012 {
		t.Fatalf("close %d after %d events, want 1012", code, next)
	}
	if next < missed {
		// Not required, but the replay is written before the close.
		t.Logf("closed after %d of %d replayed events", next, missed)
	}
	if last == "" {
		last = state
	}
	c, a = reconnect(t, n, tok, pid, last)
	if a.PID != pid {
		t.Fatalf("pid %s, want %s (recovered)", a.PID, pid)
	}
	readSeqs(t, c, &next, missed+1) // the rest, and the lost event
	c.noFrame(50 * time.Millisecond)
}

// TestStaleReset: a Reset to a head a subscription has already passed, live
// or at the end of its replay, does not disconnect it; one past it does.
func TestStaleReset(t *testing.T) {
	l := wstest.NewLossy()
	n := startNode(t, l, nil)
	tok := tokenFor(t, "u1", []string{"p"}, nil, nil)
	s := backplane.Stream{Project: "p", Collection: "c"}
	pid, state := subscribed(t, n, tok)
	offs := n.Publish(t, padded(0, 3, 10)...)
	hook := func(s backplane.Stream) { l.Reset(s, offs[1]) } // behind History's head
	l.OnNextHistory(hook)

	c, a := reconnect(t, n, tok, pid, state)
	if a.PID != pid {
		t.Fatalf("pid %s, want %s (recovered)", a.PID, pid)
	}
	next := 0
	readSeqs(t, c, &next, 3)
	l.Reset(s, offs[2]) // live, at the subscription's position
	n.Publish(t, padded(3, 1, 10)...)
	readSeqs(t, c, &next, 4)

	lost := l.LoseOne(t, s, 4)
	l.Reset(s, lost)
	if code := c.closed(); code != 1012 {
		t.Fatalf("close %d after a Reset past the subscription, want 1012", code)
	}
}

// TestResetMidReplay: a Reset that arrives while the writer is still
// pulling a replay the client reads slowly is applied when the replay
// ends: every replayed event, then 1012.
func TestResetMidReplay(t *testing.T) {
	l := wstest.NewLossy()
	n := startNode(t, l, func(c *nodeConfig) { c.MaxQueueBytes = 256 << 10; c.WriteTimeout = 5 * time.Second })
	tok := tokenFor(t, "u1", []string{"p"}, nil, nil)
	pid, state := subscribed(t, n, tok)
	// More than the socket buffers hold (4 MiB of send buffer at most), so
	// the replay cannot end before the client has read most of it.
	const missed = 200
	if _, err := l.Memory.Publish(context.Background(), padded(0, missed, 32<<10)); err != nil {
		t.Fatal(err)
	}
	// The test reads the socket itself, through a fixed 256 KiB receive
	// buffer (above loopback's MSS, so the window does not stall).
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, n.sioURL(""), &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(256 << 10)
			}
			return conn, err
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	auth, _ := json.Marshal(map[string]string{"token": tok, "pid": pid, "offset": state})
	if _, _, err := ws.Read(ctx); err != nil { // Engine.IO open
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, append([]byte("40"), auth...)); err != nil {
		t.Fatal(err)
	}
	read := func() (string, error) {
		for {
			_, data, err := ws.Read(ctx)
			if err != nil || string(data) != "2" {
				return string(data), err
			}
		}
	}
	if f, err := read(); err != nil || !strings.Contains(f, pid) {
		t.Fatalf("CONNECT answer %.80q, %v; want recovered", f, err)
	}
	s := backplane.Stream{Project: "p", Collection: "c"}
	for i := 0; ; i++ {
		f, err := read()
		if i == 0 {
			l.Reset(s, l.LoseOne(t, s, missed)) // the replay is under way
		}
		if err != nil {
			if code := websocket.CloseStatus(err); code != 1012 || i != missed {
				t.Fatalf("closed with %d after %d events, want 1012 after %d: %v", code, i, missed, err)
			}
			return
		}
		if want := `"document":` + strconv.Itoa(i) + `,`; !strings.Contains(f, want) {
			t.Fatalf("frame %d is %.120q, want document %d", i, f, i)
		}
	}
}
