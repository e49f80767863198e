package ws

import (
	"context"
	"fmt"
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// maxFrameBytes bounds how many bytes of events go into one frame, so one
// busy subscription cannot build an unbounded frame; a single larger event
// still gets its own frame.
const maxFrameBytes = 256 << 10

// transport is the engine's hub.Transport for one /v1/ws connection.
type transport struct {
	sock      wsconn.Sink                 // the socket (a recorder in adapter tests)
	ping      func(context.Context) error // the socket's WebSocket ping
	abort     <-chan struct{}
	ctx       context.Context // the session's
	pingEvery time.Duration
	timeout   time.Duration

	buf []byte // writer-owned frame buffer
}

var _ hub.Transport = (*transport)(nil)

// WriteEvents writes sub's events as one or more `events` frames.
func (t *transport) WriteEvents(sub *hub.Subscription, events []*hub.Message) error {
	header := tagOf(sub).header
	b := append(t.buf[:0], header...)
	n := 0
	flush := func() error {
		b = append(b, "]}"...)
		err := t.sock.Write(b, t.abort)
		b, n = append(b[:0], header...), 0
		return err
	}
	for _, m := range events {
		data := m.Data(hub.JSON)
		if n > 0 && len(b)+len(data) > maxFrameBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, data...)
		n++
	}
	err := flush()
	t.buf = b[:0]
	return err
}

// WriteFrame writes a control frame as it is.
func (t *transport) WriteFrame(f hub.Frame) error { return t.sock.Write(f.Data, t.abort) }

// Flush sends the batch's frames: one write to the socket per batch.
func (t *transport) Flush() error { return t.sock.Flush() }

// Heartbeat pings the client; one that answers no ping within the write
// timeout is stalled.
func (t *transport) Heartbeat() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	err := t.ping(ctx)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("%w: no pong within %s", hub.ErrStalled, t.timeout)
	}
	return t.pingEvery, nil
}

// Gap is a fresh `subscribed` with recovered:false: the client reloads.
func (t *transport) Gap(sub *hub.Subscription, head backplane.Offset) (hub.Frame, bool) {
	s := sub.Stream()
	return hub.Frame{Data: encodeFrame(subscribedFrame{Op: "subscribed", ID: tagOf(sub).id, Project: s.Project,
		Collection: s.Collection, Offset: head.String(), Recovered: false})}, false
}

// Close sends the close frame (or cuts the connection, for CloseAbnormal).
func (t *transport) Close(code hub.CloseCode, reason string) { t.sock.End(int(code), reason) }
