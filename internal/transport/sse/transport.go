package sse

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
)

// subscribedMeta rides in the Frame of a `subscribed` message, so that the
// writer applies its position at the message's place in the queue.
type subscribedMeta struct {
	index     int
	head      string
	recovered bool
}

// transport is the engine's hub.Transport for one stream. The session's
// writer calls its write methods one at a time; Close may come from
// another goroutine (a drain out of time cuts the stream).
type transport struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	subs      []Subscription
	headers   [][]byte // eventsHeader per subscription
	enc       *encoder
	timeout   time.Duration // every write's deadline
	keepAlive time.Duration
	retry     time.Duration // sent first when set

	wmu       sync.Mutex // held by every write, so a Close from elsewhere waits for it
	started   bool       // the status is written: the stream's 200, or a refusal
	refused   bool       // the status was a refusal: the session writes nothing
	armed     bool       // the write deadline of the current batch is set
	unflushed bool

	cmu    sync.Mutex // guards done: the handler has returned, w is gone
	done   bool
	closed hub.CloseCode
	abort  bool // the refusal is a network error (abortFor); wmu held

}

var _ hub.Transport = (*transport)(nil)

func newTransport(w http.ResponseWriter, subs []Subscription, cfg Config, timeout time.Duration) *transport {
	t := &transport{w: w, rc: http.NewResponseController(w), subs: subs, enc: newEncoder(subs),
		timeout: timeout, keepAlive: cfg.KeepAlive, retry: cfg.Retry, headers: make([][]byte, len(subs))}
	for i, s := range subs {
		t.headers[i] = eventsHeader(s)
	}
	return t
}

// subscribedFrame is the `subscribed` message of subscription i, queued on
// the session.
func (t *transport) subscribedFrame(i int, head string, recovered bool) hub.Frame {
	return hub.Frame{Data: encodeSubscribed(t.subs[i], head, recovered), Meta: subscribedMeta{i, head, recovered}}
}

// start writes the stream's status and headers. wmu held.
func (t *transport) start() {
	if t.started {
		return
	}
	t.started = true
	h := t.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	t.w.WriteHeader(http.StatusOK)
	if t.retry > 0 {
		t.enc.retry(t.retry.Milliseconds())
	}
}

// write writes what the encoder holds, under the batch's deadline. wmu
// held.
func (t *transport) write() error {
	if t.refused {
		t.enc.take()
		return errRefused
	}
	t.start()
	if !t.armed {
		if err := t.rc.SetWriteDeadline(time.Now().Add(t.timeout)); err != nil {
			return err
		}
		t.armed = true
	}
	_, err := t.w.Write(t.enc.take())
	t.unflushed = true
	return t.writeErr(err)
}

// writeErr maps a write that missed its deadline to hub.ErrStalled: the
// client read nothing for the write timeout.
func (t *transport) writeErr(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: read nothing for %s", hub.ErrStalled, t.timeout)
	}
	return err
}

// WriteEvents writes sub's events as one `events` message.
func (t *transport) WriteEvents(sub *hub.Subscription, events []*hub.Message) error {
	if len(events) == 0 {
		return nil
	}
	i := sub.Tag().(int)
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.enc.startEvents(t.headers[i])
	for _, m := range events {
		t.enc.addEvent(m.Data(hub.JSON))
	}
	t.enc.endEvents(i, events[len(events)-1].Offset().String())
	return t.write()
}

// WriteFrame writes a `subscribed` message at its place in the queue.
func (t *transport) WriteFrame(f hub.Frame) error {
	m, ok := f.Meta.(subscribedMeta)
	if !ok {
		return fmt.Errorf("sse: a frame the stream did not queue (%T)", f.Meta)
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.enc.subscribed(m.index, m.head, m.recovered, f.Data)
	return t.write()
}

// Flush sends the batch to the client: one flush per batch.
func (t *transport) Flush() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.flushLocked()
}

func (t *transport) flushLocked() error {
	if !t.unflushed {
		return nil
	}
	t.unflushed, t.armed = false, false
	return t.writeErr(t.rc.Flush())
}

// Heartbeat writes a comment, which keeps proxies and the client from
// taking an idle stream for a dead one; a client that does not take it
// within the write timeout is stalled.
func (t *transport) Heartbeat() (time.Duration, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.enc.comment("")
	if err := t.write(); err != nil {
		return 0, err
	}
	return t.keepAlive, t.flushLocked()
}

// Gap is a `subscribed` message with recovered:false: the client reloads
// that subscription's state, and its position is head from then on.
func (t *transport) Gap(sub *hub.Subscription, head backplane.Offset) (hub.Frame, bool) {
	return t.subscribedFrame(sub.Tag().(int), head.String(), false), false
}

// Close ends the stream. A stream has no close frame: the client learns
// why from a last message (an `error` event where it must act, a comment
// otherwise), written with a short deadline of its own, and the writer's
// return ends the response. CloseAbnormal cuts the stream at once, ending
// a write in progress.
func (t *transport) Close(code hub.CloseCode, reason string) {
	t.cmu.Lock()
	if t.done || t.closed != 0 {
		t.cmu.Unlock()
		return
	}
	t.closed = code
	if code == hub.CloseAbnormal {
		_ = t.rc.SetWriteDeadline(time.Now())
		t.cmu.Unlock()
		return
	}
	t.cmu.Unlock()
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if !t.started || t.refused {
		return // nothing was written: the handler answers
	}
	switch code {
	case hub.CloseTokenExpired, hub.CloseUnauthorized:
		t.enc.fail(CodeUnauthorized, reason)
	case hub.CloseForbidden:
		t.enc.fail(CodeForbidden, reason)
	case hub.CloseInternalError:
		t.enc.fail(hub.CodeInternal, "internal error, reconnect")
	case hub.CloseNormal:
		return
	default: // 1012 drain, 4008 slow consumer: reconnect with Last-Event-ID
		t.enc.comment(reason + "; reconnect with Last-Event-ID")
	}
	t.armed = false
	if err := t.rc.SetWriteDeadline(time.Now().Add(closeWriteTimeout)); err == nil {
		if _, err := t.w.Write(t.enc.take()); err == nil {
			_ = t.rc.Flush()
		}
	}
}

// errRefused is what the session's writes return once the request was
// answered with a refusal.
var errRefused = errors.New("sse: the request was refused")

// closeWriteTimeout bounds the last message of a closing stream, which a
// stalled client would never take.
const closeWriteTimeout = time.Second

// ended counts the stream's end in syncgate_disconnects_total, by the
// code the session closed it with ("peer" when the client went away
// first), as WebSocket connections are. The handler calls it after the
// session finished, when its writer has made its close.
func (t *transport) ended(m *metrics.Metrics) {
	t.cmu.Lock()
	code := t.closed
	t.cmu.Unlock()
	t.wmu.Lock()
	streamed := t.started && !t.refused
	t.wmu.Unlock()
	if m == nil || !streamed {
		return
	}
	label := "peer"
	if code != 0 {
		label = strconv.Itoa(int(code))
	}
	m.Disconnects.WithLabelValues(label).Inc()
}

// finish marks the response gone: a later Close does nothing. The handler
// calls it before it returns, after the session finished; it reports
// whether the request's refusal is to abort the connection (abortFor).
func (t *transport) finish() bool {
	t.cmu.Lock()
	t.done = true
	t.cmu.Unlock()
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.abort
}

// refuse answers a stream that failed before its first write with e; it
// reports false when the stream had already started (the caller ends it
// with an error message instead).
func (t *transport) refuse(w http.ResponseWriter, r *http.Request, e *RequestError) bool {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.started {
		t.enc.fail(e.Code, e.Message)
		_ = t.write()
		_ = t.flushLocked()
		return false
	}
	t.started, t.refused = true, true
	if t.abort = abortFor(r, e); !t.abort {
		WriteError(w, e)
	}
	return true
}
