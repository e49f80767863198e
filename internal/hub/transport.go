package hub

import (
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/guard"
)

// Transport names: the `transport` label of the engine's metrics and the
// `transport` of a session's logs. The set is closed, so labels stay
// bounded.
const (
	TransportWS       = guard.TransportWS       // /v1/ws, the native protocol
	TransportSocketIO = guard.TransportSocketIO // /socket.io/
	TransportSSE      = "sse"                   // /v1/sse, Server-Sent Events
)

// Transport carries one session's output to its peer: the engine decides
// what to send and when, the transport how it looks on the wire. A
// transport is created per connection, after Hub.Register, and handed to
// Session.Attach.
//
// The session's writer calls WriteEvents, WriteFrame, Flush and Heartbeat,
// one at a time, so they may use writer-owned state (a frame buffer, the
// Socket.IO recovery state) without locks. Gap is called with the session's
// lock held, from any goroutine: it must only encode. Close may be called
// from any goroutine, also while a write is in progress (which it then
// ends), and more than once.
type Transport interface {
	// WriteEvents writes a batch of one subscription's events, in offset
	// order; each event's bytes are m.Data(sub.Encoding()), encoded once per
	// node. The transport may frame them as one message (native, SSE) or
	// one per event (Socket.IO), splitting very large batches as it likes.
	WriteEvents(sub *Subscription, events []*Message) error
	// WriteFrame writes a control frame queued with Session.Send, at its
	// place among the events.
	WriteFrame(f Frame) error
	// Flush ends a batch of writes (SSE flushes its response; WebSocket
	// transports, which write each message whole, do nothing).
	Flush() error
	// Heartbeat is called when the interval it returned last (at first
	// SessionConfig.Heartbeat) has passed. It returns the next interval, or
	// an error: one wrapping ErrStalled closes the session with 4008 (its
	// message is the reason), ErrAborted means a close is decided, anything
	// else cuts the connection.
	Heartbeat() (next time.Duration, err error)
	// Gap encodes "history cannot fill the gap of sub up to head": the
	// frame to queue (native and SSE: `subscribed` with recovered:false),
	// or closeAfter, to close the session with 1012 after writing what is
	// queued (Socket.IO, which cannot tell a live socket it missed
	// events; the client's recovery then reports recovered:false).
	Gap(sub *Subscription, head backplane.Offset) (f Frame, closeAfter bool)
	// Close ends the connection with code and reason; CloseAbnormal cuts
	// it without a close frame.
	Close(code CloseCode, reason string)
}

// Errors a transport's writes return, after which the session closes (the
// close frame still fits: see wsconn). They are guard's, which wsconn's
// Socket returns, so the WebSocket transports return their socket's errors
// unchanged; other transports wrap them.
var (
	// ErrStalled means the peer read nothing for the write timeout, or did
	// not answer a heartbeat: the session closes with 4008.
	ErrStalled = guard.ErrStalled
	// ErrAborted means a write gave up because a close that drops the
	// queue was decided (Session.Abort closed).
	ErrAborted = guard.ErrAborted
)

// A Frame is a control frame a transport queues on its session: anything
// that is not a subscription's events (ready, subscribed, acks, errors,
// pongs). Data counts against the session's queue bound. Meta is the
// transport's own, handed back to WriteFrame unchanged (Socket.IO keeps its
// recovery-state changes there, applied by the writer at the frame's place
// in the queue).
type Frame struct {
	Data []byte
	Meta any
}

// SubKey names one subscription of a session. Kind is the transport's own
// discriminator (Socket.IO holds a joined project and a subscribed "*" of
// the same project side by side); transports with one kind leave it 0.
type SubKey struct {
	Kind   byte
	Stream backplane.Stream
}

// OpenRequest asks Session.Open for a subscription.
type OpenRequest struct {
	Key SubKey
	// Since is the offset to replay after ("" is live from the head).
	Since string
	// Encoding is how the subscription's events are encoded.
	Encoding Encoding
	// Tag is the transport's own data about the subscription (the native
	// protocol keeps the request id), read back with Subscription.Tag.
	Tag any
}

// Opened is what Session.Open found: the stream's head and whether every
// event after Since is still in history.
type Opened struct {
	Head      backplane.Offset
	Recovered bool
}

// Subscription is one stream a session receives. Its accessors are safe
// from any goroutine.
type Subscription struct {
	sess *Session
	key  SubKey
	enc  Encoding
	tag  any

	// Guarded by sess.mu.
	state subState
	last  backplane.Offset // newest offset queued to the client
	rp    *replayState     // while state is subReplaying; nil once live or ended
}

// replayState is what a subscription keeps while it replays, apart so that
// a live subscription, the many, does not carry it (~240 bytes). Guarded
// by the session's mu.
type replayState struct {
	pending      []*Message        // live events that arrived during replay
	pendingBytes int               // bytes of pending, as counted in the queue bound
	replay       []*Message        // history not yet queued; the writer pulls it
	replayBytes  int               // bytes of replay
	cursor       backplane.Cursor  // where reading history stands
	fetching     bool              // a page of history is being read
	head         backplane.Offset  // the newest stream head History answered
	resetTo      *backplane.Offset // a backplane Reset that arrived during replay
	begun        bool              // Begin started it
}

// Key is the subscription's key.
func (s *Subscription) Key() SubKey { return s.key }

// Stream is the subscription's stream.
func (s *Subscription) Stream() backplane.Stream { return s.key.Stream }

// Encoding is how the subscription's events are encoded.
func (s *Subscription) Encoding() Encoding { return s.enc }

// Tag is OpenRequest.Tag.
func (s *Subscription) Tag() any { return s.tag }

// subState is where a subscription is in its life.
type subState uint8

const (
	subReplaying subState = iota // opened, or history being queued; live events go to pending
	subLive                      // live events go to the queue
	subEnded                     // ended, or the session is gone
)
