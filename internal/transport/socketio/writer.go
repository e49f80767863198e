package socketio

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// stateOp changes the writer's recovery state at its place in the queue.
type stateOp uint8

const (
	opNone stateOp = iota
	opSet
	opRemove
)

// stateChange is the Meta of a queued frame: a recovery-state change, and
// whether the frame is an unclosed event array the state is appended to.
type stateChange struct {
	withState bool
	op        stateOp
	key       subKey
	off       backplane.Offset
}

// transport is the engine's hub.Transport for one Engine.IO connection.
// Each Socket.IO packet is one WebSocket message (Engine.IO v4 does not
// batch packets on WebSocket); every event carries the connection's whole
// recovery state as its last argument. The writer alone calls its write
// methods, so the recovery state it hands out (written, keys) needs no lock.
type transport struct {
	sock         wsconn.Sink // the socket (a recorder in adapter tests)
	abort        <-chan struct{}
	pingInterval time.Duration
	pingTimeout  time.Duration
	lastPong     atomic.Int64 // UnixNano of the last pong, set by the reader

	// Writer-owned.
	pinged   int64
	awaiting bool // a ping is unanswered
	written  map[subKey]backplane.Offset
	keys     []subKey // written's keys, sorted
	buf      []byte
}

var _ hub.Transport = (*transport)(nil)

// WriteEvents writes one EVENT packet per event, each with the state as of
// that event.
func (t *transport) WriteEvents(sub *hub.Subscription, events []*hub.Message) error {
	key := sub.Key()
	t.setWritten(key, nil)
	for _, m := range events {
		t.written[key] = m.Offset()
		b := append(t.buf[:0], m.Data(sub.Encoding())...)
		b = t.appendState(b)
		t.buf = b[:0]
		if err := t.write(b); err != nil {
			return err
		}
	}
	return nil
}

// WriteFrame applies the frame's recovery-state change and writes it,
// appending the state as the last argument where the frame wants it.
func (t *transport) WriteFrame(f hub.Frame) error {
	st, _ := f.Meta.(*stateChange)
	if st == nil {
		if f.Data == nil {
			return nil
		}
		return t.write(f.Data)
	}
	switch st.op {
	case opSet:
		t.setWritten(st.key, st)
	case opRemove:
		if _, ok := t.written[st.key]; ok {
			delete(t.written, st.key)
			t.keys = slices.DeleteFunc(t.keys, func(k subKey) bool { return k == st.key })
		}
	}
	switch {
	case f.Data != nil && st.withState:
		b := append(t.buf[:0], f.Data...)
		b = t.appendState(b)
		t.buf = b[:0]
		return t.write(b)
	case f.Data != nil:
		return t.write(f.Data)
	}
	return nil
}

// Flush sends the batch's packets: one write to the socket per batch.
func (t *transport) Flush() error { return t.sock.Flush() }

// Heartbeat is Engine.IO's: ping, then after PingTimeout check that the
// pong came (else 4008), then ping again PingInterval after the last ping.
func (t *transport) Heartbeat() (time.Duration, error) {
	if t.awaiting {
		t.awaiting = false
		if t.lastPong.Load() < t.pinged {
			return 0, fmt.Errorf("%w: no pong within %s", hub.ErrStalled, t.pingTimeout)
		}
		if rest := t.pingInterval - t.pingTimeout; rest > 0 {
			return rest, nil
		}
	}
	t.pinged, t.awaiting = time.Now().UnixNano(), true
	if err := t.write([]byte{eioPing}); err != nil {
		return 0, err
	}
	return t.pingTimeout, nil
}

// Gap closes the connection with 1012 after what is queued: Socket.IO has
// no way to tell a live socket that it missed events, so socket.io-client
// reconnects, its recovery fails, and it sees socket.recovered === false.
func (t *transport) Gap(*hub.Subscription, backplane.Offset) (hub.Frame, bool) {
	return hub.Frame{}, true
}

// Close sends the close frame (or cuts the connection, for CloseAbnormal).
func (t *transport) Close(code hub.CloseCode, reason string) { t.sock.End(int(code), reason) }

// setWritten records key in the state (with the change's offset when
// given), keeping keys sorted.
func (t *transport) setWritten(key subKey, st *stateChange) {
	if _, ok := t.written[key]; !ok {
		i, _ := slices.BinarySearchFunc(t.keys, key, compareKeys)
		t.keys = slices.Insert(t.keys, i, key)
	}
	if st != nil {
		t.written[key] = st.off
	}
}

func compareKeys(a, b subKey) int {
	if c := strings.Compare(a.Stream.Project, b.Stream.Project); c != 0 {
		return c
	}
	if c := strings.Compare(a.Stream.Collection, b.Stream.Collection); c != 0 {
		return c
	}
	return int(a.Kind) - int(b.Kind)
}

// appendState closes an event array with the recovery state as its last
// argument: `,"sg1|…"]`.
func (t *transport) appendState(b []byte) []byte {
	b = append(b, ',', '"')
	b = appendState(b, t.keys, t.written)
	return append(b, '"', ']')
}

func (t *transport) write(frame []byte) error {
	return t.sock.Write(frame, t.abort)
}
