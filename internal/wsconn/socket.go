package wsconn

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/metrics"
)

// Config configures Accept.
type Config struct {
	// StallLimit is how long Write waits for a peer that reads nothing to
	// make room in the send buffer before it gives up with ErrStalled, and
	// the write deadline of every write; the transports pass their
	// WriteTimeout. Default 10s.
	StallLimit time.Duration
	// Metrics may be nil.
	Metrics *metrics.Metrics
}

// Errors of Socket.Write after which the caller closes the connection with
// Socket.Close: the close frame still fits in the send buffer.
var (
	// ErrStalled means the peer read nothing for Config.StallLimit.
	ErrStalled = errors.New("wsconn: the peer stopped reading")
	// ErrAborted means the abort channel closed while Write waited for room.
	ErrAborted = errors.New("wsconn: write abandoned for a close")
	// errUnfinished means an earlier Write left a message unfinished; only
	// a close may follow.
	errUnfinished = errors.New("wsconn: a message was left unfinished")
)

const (
	// fragmentSize is the largest piece of a message Write hands the
	// kernel at once: a longer message goes out as several WebSocket
	// frames, each started only when it fits, so a peer that stops reading
	// in the middle of a large message still gets the close frame (RFC 6455
	// allows control frames between the fragments of a message).
	fragmentSize = 16 << 10
	// reserve is the send-buffer room Write always leaves free for what
	// may follow without waiting: the close frame (at most 127 bytes), a
	// few pings and pongs, and what coder/websocket's 4 KiB write buffer
	// may still hold back.
	reserve = 6 << 10
	// frameOverhead is the largest WebSocket frame header.
	frameOverhead = 14
	// maxPoll is the longest Write sleeps between two looks at the send
	// buffer while the peer does not read.
	maxPoll = 50 * time.Millisecond
)

// roomer tells how full a socket's send buffer is (room_linux.go).
type roomer interface {
	room() (sndbuf, queued int, ok bool)
}

// Socket is one accepted WebSocket. WS is for reading and control frames;
// messages are written with Write, the close with Close.
type Socket struct {
	WS *websocket.Conn

	nc    net.Conn   // the raw socket: write deadlines
	out   *batchConn // the write side: batches until Flush
	room  roomer     // nil when the send buffer cannot be inspected
	stall time.Duration
	m     *metrics.Metrics

	// Writer-owned.
	credit     int  // bytes known to fit before the kernel is asked again
	unfinished bool // a message was left unfinished

	mu      sync.Mutex
	code    string // how the server ended the connection, first one wins
	counted bool
}

// Accept upgrades the request like websocket.Accept (which answers a
// refused upgrade itself), with a small read buffer and the raw socket
// kept for Write.
func Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions, cfg Config) (*Socket, error) {
	hj := &smallReadBuffer{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, opts)
	if err != nil {
		return nil, err
	}
	if cfg.StallLimit <= 0 {
		cfg.StallLimit = 10 * time.Second
	}
	s := &Socket{WS: ws, nc: hj.nc, out: hj.out, stall: cfg.StallLimit, m: cfg.Metrics}
	if hj.nc != nil {
		s.room = newRoom(hj.nc)
	}
	if s.out != nil {
		s.out.stall = cfg.StallLimit
	}
	return s, nil
}

// Write writes msg as one text message. Only one goroutine writes at a time.
// The message is part of a batch that Flush hands the kernel (in one
// write(2) however many messages it holds); a batch over 64 KiB, or one
// that must wait for room, goes out earlier.
//
// Where the send buffer can be inspected (Linux TCP), no frame is started
// that the kernel cannot take at once while keeping the reserve free for a
// close frame: while the peer reads nothing, Write waits, and returns
// ErrAborted when abort closes, or ErrStalled after Config.StallLimit. The
// message may then be left unfinished; the caller closes with Close, whose
// frame the peer reads when it resumes. Elsewhere each write is bounded by
// a deadline of StallLimit, after which the connection is cut.
func (s *Socket) Write(msg []byte, abort <-chan struct{}) error {
	if s.unfinished {
		return errUnfinished
	}
	if s.out != nil {
		s.out.begin()
	}
	if s.room == nil || len(msg) <= fragmentSize {
		if s.room != nil {
			if err := s.waitRoom(len(msg)+frameOverhead, abort); err != nil {
				return err
			}
		}
		return s.write(func() error { return s.WS.Write(context.Background(), websocket.MessageText, msg) })
	}
	w, err := s.WS.Writer(context.Background(), websocket.MessageText)
	if err != nil {
		return err
	}
	s.unfinished = true
	for len(msg) > 0 {
		n := min(len(msg), fragmentSize)
		if err := s.waitRoom(n+frameOverhead, abort); err != nil {
			return err
		}
		if err := s.write(func() error { _, err := w.Write(msg[:n]); return err }); err != nil {
			return err
		}
		msg = msg[n:]
	}
	if err := s.waitRoom(frameOverhead, abort); err != nil {
		return err
	}
	if err := s.write(w.Close); err != nil {
		return err
	}
	s.unfinished = false
	return nil
}

// waitRoom returns once n bytes fit in the send buffer with the reserve
// left free. The kernel bounds the send queue's memory by SO_SNDBUF,
// counting its own bookkeeping too, so only half of it is taken for data.
// An empty buffer takes any fragment: nothing waits in front of it.
func (s *Socket) waitRoom(n int, abort <-chan struct{}) error {
	if s.credit >= n {
		s.credit -= n
		return nil
	}
	// What the batch holds fits the credit it was written under: hand it
	// to the kernel, so the room seen below is the real one.
	if err := s.flushHeld(); err != nil {
		return err
	}
	var (
		timer *time.Timer
		start time.Time
		delay = time.Millisecond
	)
	for {
		sndbuf, queued, ok := s.room.room()
		if !ok {
			return nil // cannot tell: the write deadline bounds the write
		}
		s.credit = sndbuf/2 - queued - reserve
		if s.credit >= n || queued == 0 {
			s.credit -= n
			return nil
		}
		now := time.Now()
		if timer == nil {
			start = now
			timer = time.NewTimer(delay)
			defer timer.Stop()
		} else {
			waited := now.Sub(start)
			if waited >= s.stall {
				return ErrStalled
			}
			delay = min(2*delay, maxPoll)
			timer.Reset(min(delay, s.stall-waited))
		}
		select {
		case <-abort:
			return ErrAborted
		case <-timer.C:
		}
	}
}

// write runs one write bounded by a deadline on the socket rather than a
// context: with a context coder/websocket registers and removes a
// context.AfterFunc per write, which with WithTimeout cost about a tenth of
// the gateway's CPU in the fan-out profile (BENCHMARKS.md). The deadline is
// cleared after the write so that pings, pongs and the close handshake,
// which coder/websocket bounds with their own contexts, never meet a stale
// one; a close (CloseNow) still interrupts a blocked write.
//
// With the batching writer (out) no deadline is set here: the frames only
// reach the batch, and each flush of it to the kernel carries its own.
func (s *Socket) write(f func() error) error {
	if s.nc == nil || s.out != nil {
		return f()
	}
	if err := s.nc.SetWriteDeadline(time.Now().Add(s.stall)); err != nil {
		return err
	}
	err := f()
	_ = s.nc.SetWriteDeadline(time.Time{})
	return err
}

// Flush hands the kernel what the batch holds, in one write bounded by the
// stall limit, and ends the batch.
func (s *Socket) Flush() error {
	if s.out == nil {
		return nil
	}
	return s.out.end()
}

func (s *Socket) flushHeld() error {
	if s.out == nil {
		return nil
	}
	return s.out.flush()
}

// Close ends the connection with code and does the close handshake: the
// close frame fits in the room Write always leaves, so even a peer that
// stopped reading reads it when it resumes (the kernel delivers it after
// what is queued, also once the socket is closed). coder/websocket bounds
// the frame's write and the wait for the peer's answer (5 s each). The
// first of Close and Cut is what Finish counts.
func (s *Socket) Close(code websocket.StatusCode, reason string) {
	s.record(strconv.Itoa(int(code)))
	if s.out != nil {
		_ = s.out.shut() // what was written goes before the close frame
	}
	_ = s.WS.Close(code, clipReason(reason))
}

// Sink is what a transport writes one connection's messages to: a
// *Socket, or a recorder in a transport's tests. Messages written are sent
// at the latest by the next Flush (the end of the engine's batch).
type Sink interface {
	Write(msg []byte, abort <-chan struct{}) error
	Flush() error
	End(code int, reason string)
}

var _ Sink = (*Socket)(nil)

// Refuse closes a socket whose session the node refused (code 1012 while
// draining, 1013 when full) and releases it.
func (s *Socket) Refuse(code int) {
	s.Close(websocket.StatusCode(code), "node full or draining, try another")
	s.Finish()
}

// End closes the connection with code and reason, or cuts it when code is
// 1006 (abnormal closure, which is never sent): the engine's close of a
// session, as both WebSocket transports make it.
func (s *Socket) End(code int, reason string) {
	if code == int(websocket.StatusAbnormalClosure) {
		s.Cut()
		return
	}
	s.Close(websocket.StatusCode(code), reason)
}

// Cut ends the connection without a close frame (the socket failed, or the
// peer is gone); Finish counts it as 1006, what the peer sees.
func (s *Socket) Cut() {
	s.record("1006")
	_ = s.WS.CloseNow()
}

// Finish releases the socket and counts how it ended in
// syncgate_disconnects_total, once: the first Close's code, 1006 for a
// Cut, or "peer" when the client closed it or went away first.
func (s *Socket) Finish() {
	_ = s.WS.CloseNow()
	s.mu.Lock()
	code, counted := s.code, s.counted
	s.counted = true
	s.mu.Unlock()
	if counted || s.m == nil {
		return
	}
	if code == "" {
		code = "peer"
	}
	s.m.Disconnects.WithLabelValues(code).Inc()
}

func (s *Socket) record(code string) {
	s.mu.Lock()
	if s.code == "" {
		s.code = code
	}
	s.mu.Unlock()
}

// clipReason fits a close reason into a close frame (123 bytes) without
// splitting a character; coder/websocket would send 1011 instead.
func clipReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
