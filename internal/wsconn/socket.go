package wsconn

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/syncgate/syncgate/internal/guard"
	"github.com/syncgate/syncgate/internal/metrics"
)

// Config configures Accept.
type Config struct {
	// Subprotocols are the subprotocols the server speaks, in order of
	// preference; the first one the client offers is selected. Default
	// none.
	Subprotocols []string
	// OriginPatterns are the browser origins allowed besides the request's
	// own host (path.Match patterns on the origin's host, or on
	// scheme://host when the pattern has "://"). Default: same origin.
	OriginPatterns []string
	// ReadLimit is the largest message Read accepts; a larger one closes
	// the connection with 1009. Default 32 KiB.
	ReadLimit int64
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
	// ErrStalled means the peer read nothing for Config.StallLimit
	// (guard's, which the engine knows).
	ErrStalled = guard.ErrStalled
	// ErrAborted means the abort channel closed while Write waited for
	// room (guard's, which the engine knows).
	ErrAborted = guard.ErrAborted
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
	// may follow without waiting: the close frame (at most 127 bytes) and
	// a few pings and pongs.
	reserve = 6 << 10
	// frameOverhead is the largest server frame header.
	frameOverhead = 10
	// maxPoll is the longest Write sleeps between two looks at the send
	// buffer while the peer does not read.
	maxPoll = 50 * time.Millisecond
)

// roomer tells how full a socket's send buffer is (room_linux.go).
type roomer interface {
	room() (sndbuf, queued int, ok bool)
}

// Socket is one accepted WebSocket, server side (RFC 6455): one goroutine
// reads messages with Read, one at a time writes them with Write, and
// Ping, Close, Cut and Finish may come from any goroutine. An idle socket
// holds no buffer: what it costs is this record and its reader's blocked
// read.
type Socket struct {
	nc    net.Conn  // the raw socket: reads, deadlines, close
	out   batchConn // the write side: batches until Flush
	room  roomer    // nil when the send buffer cannot be inspected
	stall time.Duration
	m     *metrics.Metrics

	// Reader-owned (under rmu, which Read holds, and a Close that reads
	// the peer's answer itself while no Read runs).
	rmu       sync.Mutex
	pending   []byte  // bytes net/http read past the upgrade request
	first     [1]byte // the byte wait read
	hasFirst  bool
	readLimit int64

	// Writer-owned.
	credit     int  // bytes known to fit before the kernel is asked again
	unfinished bool // a message was left unfinished

	mu        sync.Mutex
	code      string // how the server ended the connection, first one wins
	counted   bool
	closing   bool          // a close frame was sent (or the socket closed)
	closed    bool          // the socket is closed
	readEnded bool          // Read returned an error: nothing reads any more
	closeWait chan struct{} // closed when Read returns, for a waiting Close
	pong      chan struct{} // closed by the pong of the ping in flight
	pingSeq   uint64        // the payload of the ping in flight
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
	s.out.begin()
	if s.room == nil || len(msg) <= fragmentSize {
		if s.room != nil {
			if err := s.waitRoom(len(msg)+frameOverhead, abort); err != nil {
				return err
			}
		}
		return s.writeFrame(true, opText, msg)
	}
	s.unfinished = true
	op := byte(opText)
	for len(msg) > 0 {
		n := min(len(msg), fragmentSize)
		if err := s.waitRoom(n+frameOverhead, abort); err != nil {
			return err
		}
		if err := s.writeFrame(n == len(msg), op, msg[:n]); err != nil {
			return err
		}
		msg, op = msg[n:], opContinuation
	}
	s.unfinished = false
	return nil
}

// writeFrame hands one data frame to the batch.
func (s *Socket) writeFrame(fin bool, op byte, payload []byte) error {
	var hdr [frameOverhead]byte
	return s.out.writeFrame(appendHeader(hdr[:0], fin, op, len(payload)), payload)
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

// Flush hands the kernel what the batch holds, in one write bounded by the
// stall limit, and ends the batch.
func (s *Socket) Flush() error { return s.out.end() }

func (s *Socket) flushHeld() error { return s.out.flush() }

// Close ends the connection with code and does the close handshake: what
// the batch holds goes out, then the close frame, which fits in the room
// Write always leaves, so even a peer that stopped reading reads it when
// it resumes (the kernel delivers it after what is queued). Close then
// waits (at most 5 s) for the peer's answer, read by the reader's Read or,
// when no Read runs, by Close itself, and closes the socket. The first of
// Close and Cut is what Finish counts; a second Close does nothing.
func (s *Socket) Close(code int, reason string) {
	s.record(strconv.Itoa(code))
	if !s.startClose() {
		return
	}
	if s.out.shut(controlFrame(opClose, closePayload(code, reason))) == nil {
		s.awaitPeerClose()
	}
	s.closeNow()
}

// startClose reports whether the caller is the first to close: it sends
// the close frame.
func (s *Socket) startClose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := !s.closing
	s.closing = true
	return first
}

// awaitPeerClose waits for the peer's close frame after ours, up to
// closeWaitTimeout: while a Read runs it reads it, else this goroutine does.
func (s *Socket) awaitPeerClose() {
	timer := time.NewTimer(closeWaitTimeout)
	defer timer.Stop()
	deadline := time.Now().Add(closeWaitTimeout)
	for {
		if s.rmu.TryLock() {
			_ = s.nc.SetReadDeadline(deadline)
			for {
				if _, _, err := s.readMessage(false, false); err != nil {
					break // the peer's close (a *CloseError), or the end of the socket
				}
			}
			s.rmu.Unlock()
			return
		}
		s.mu.Lock()
		if s.readEnded {
			s.mu.Unlock()
			return
		}
		wait := make(chan struct{})
		s.closeWait = wait
		s.mu.Unlock()
		select {
		case <-wait: // the reader ended, or left Read: look again
		case <-timer.C:
			return
		}
	}
}

// closeNow closes the socket at once; a Ping waiting for its pong returns.
func (s *Socket) closeNow() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.closing = true, true
	if s.pong != nil {
		close(s.pong)
		s.pong = nil
	}
	s.mu.Unlock()
	_ = s.nc.Close()
}

// Ping sends a ping and waits for its pong, which the reader's Read
// receives, until ctx ends.
func (s *Socket) Ping(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.pingSeq++
	payload := binary.BigEndian.AppendUint64(nil, s.pingSeq)
	wait := make(chan struct{})
	s.pong = wait
	s.mu.Unlock()
	if err := s.writeControl(opPing, payload); err != nil {
		return err
	}
	select {
	case <-wait:
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return net.ErrClosed
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gotPong ends the wait of the ping in flight when payload is its pong;
// an unsolicited pong is allowed and ignored.
func (s *Socket) gotPong(payload []byte) {
	s.mu.Lock()
	if s.pong != nil && len(payload) == 8 && binary.BigEndian.Uint64(payload) == s.pingSeq {
		close(s.pong)
		s.pong = nil
	}
	s.mu.Unlock()
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
	s.Close(code, "node full or draining, try another")
	s.Finish()
}

// End closes the connection with code and reason, or cuts it when code is
// 1006 (abnormal closure, which is never sent): the engine's close of a
// session, as both WebSocket transports make it.
func (s *Socket) End(code int, reason string) {
	if code == closeAbnormal {
		s.Cut()
		return
	}
	s.Close(code, reason)
}

// Cut ends the connection without a close frame (the socket failed, or the
// peer is gone); Finish counts it as 1006, what the peer sees.
func (s *Socket) Cut() {
	s.record("1006")
	s.closeNow()
}

// Finish releases the socket and counts how it ended in
// syncgate_disconnects_total, once: the first Close's code, 1006 for a
// Cut, or "peer" when the client closed it or went away first.
func (s *Socket) Finish() {
	s.closeNow()
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
// splitting a character.
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
