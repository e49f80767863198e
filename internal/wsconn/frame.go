package wsconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// Close codes the socket itself sends (RFC 6455 section 7.4.1).
const (
	closeProtocol     = 1002
	closeNoStatus     = 1005 // a close frame without a code; never sent
	closeInvalidData  = 1007
	closePolicy       = 1008
	closeTooBig       = 1009
	closeAbnormal     = 1006            // what a cut connection is counted as; never sent
	closeWaitTimeout  = 5 * time.Second // for the peer's answer to a close frame
	maxControlPayload = 125
	payloadStep       = 4 << 10 // the least a payload read grows a message by
)

// MessageType is the type of a data message.
type MessageType int

// Message types.
const (
	MessageText   MessageType = opText
	MessageBinary MessageType = opBinary
)

// CloseError is what Read returns when the peer closed the connection with
// a close frame.
type CloseError struct {
	Code   int // 1005 when the frame carried none
	Reason string
}

func (e *CloseError) Error() string {
	return "wsconn: the peer closed with " + strconv.Itoa(e.Code) + " " + strconv.Quote(e.Reason)
}

// CloseStatus is the code of a *CloseError in err's chain, or -1.
func CloseStatus(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// errProtocol marks a frame the socket refused; Read has sent the close.
var errProtocol = errors.New("wsconn: the peer broke the WebSocket protocol")

// header is one frame's header as read.
type header struct {
	fin    bool
	op     byte
	length int64
	key    [4]byte
}

// Serve calls step for each message the peer sends, until step returns
// false or the socket ends; step reads the message (or a control frame)
// with Next, on a goroutine of its own (the transports use
// Session.Handle). Between
// messages the caller waits here for the first byte of the next one, a few
// frames from the top of its goroutine, so an idle connection's reader
// keeps the 2 KiB minimum stack. It must never go deeper: the runtime
// shrinks a parked goroutine's stack only while it uses under a quarter of
// it (counting an 800-byte margin), so a reader that once grew to 4 KiB
// keeps 4 KiB, and new goroutines start at the average stack in use plus a
// guard, rounded up, so readers parked deeper than ~1.1 KiB start at
// 4 KiB (BENCHMARKS.md, "Idle connection memory").
func (s *Socket) Serve(step func() bool) {
	for s.wait() == nil && step() {
	}
}

// wait blocks until the first byte of the next frame has arrived, and
// keeps it for Read.
func (s *Socket) wait() error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	var err error
	if !s.hasFirst && len(s.pending) == 0 {
		var n int
		if n, err = s.nc.Read(s.first[:]); n == 1 {
			s.hasFirst, err = true, nil
		} else if err == nil {
			err = io.ErrNoProgress
		}
	}
	s.leftRead(err)
	return err
}

// leftRead notes that a read ended with err, for a Close waiting for the
// reader. s.rmu held.
func (s *Socket) leftRead(err error) {
	s.mu.Lock()
	if err != nil {
		s.readEnded = true
	}
	if s.closeWait != nil { // a Close waits for the reader: it ended, or left
		close(s.closeWait)
		s.closeWait = nil
	}
	s.mu.Unlock()
}

// Read returns the next data message, answering pings and noting pongs on
// the way. One goroutine reads at a time. An idle connection's reader
// waits here in a plain read of the socket, at a shallow depth, so its
// stack stays small. A frame that breaks the protocol (unmasked, reserved
// bits, a bad opcode or fragment sequence), a message over the read
// limit (1009) or text that is not UTF-8 (1007) is answered with a close
// frame, after which Read waits (bounded) for the peer to go and returns
// an error. When the peer closes, Read answers its close frame and
// returns a *CloseError.
func (s *Socket) Read() (MessageType, []byte, error) {
	return s.read(false)
}

// Next is Read for a step of Serve: it also returns, with MessageType 0
// and no data, after a control frame that came outside a message (a ping
// answered, a pong noted), so that the reader goes back to waiting at the
// top of its stack rather than for the next message here.
func (s *Socket) Next() (MessageType, []byte, error) {
	return s.read(true)
}

func (s *Socket) read(control bool) (MessageType, []byte, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	typ, data, err := s.readMessage(control, true)
	if errors.Is(err, os.ErrDeadlineExceeded) && s.stall > 0 {
		err = s.fail(closePolicy, "fragmented message not completed within "+s.stall.String())
	}
	s.leftRead(err)
	return typ, data, err
}

// readMessage reads frames up to the end of a data message, or, with
// control, up to a control frame outside a message. With bound (the
// reader's reads, not a Close reading the peer's answer under its own
// deadline), a fragmented message must end within the stall limit of its
// first fragment: a peer that answers pings between fragments could
// otherwise hold a message open, and its bytes, for ever. s.rmu held.
func (s *Socket) readMessage(control, bound bool) (MessageType, []byte, error) {
	var (
		typ      MessageType
		msg      []byte
		deadline bool // this call set a read deadline for the message
	)
	defer func() {
		if deadline {
			_ = s.nc.SetReadDeadline(time.Time{})
		}
	}()
	for {
		var h header
		if err := s.readHeader(&h); err != nil {
			return 0, nil, err
		}
		switch h.op {
		case opPing, opPong, opClose:
			payload := make([]byte, h.length)
			if err := s.readPayload(&h, payload); err != nil {
				return 0, nil, err
			}
			switch h.op {
			case opPing:
				if !s.pongFits(len(payload)) {
					break // RFC 6455 5.5.3: a later ping's pong answers it too
				}
				if err := s.writeControl(opPong, payload); err != nil {
					return 0, nil, err
				}
			case opPong:
				s.gotPong(payload)
			default:
				return 0, nil, s.peerClosed(payload)
			}
			if control && typ == 0 {
				return 0, nil, nil
			}
			continue
		case opContinuation:
			if typ == 0 {
				return 0, nil, s.fail(closeProtocol, "continuation frame without a message")
			}
		default: // text or binary (readHeader refused other opcodes)
			if typ != 0 {
				return 0, nil, s.fail(closeProtocol, "new message inside a fragmented one")
			}
			typ = MessageType(h.op)
			if bound && !h.fin && s.stall > 0 {
				_ = s.nc.SetReadDeadline(time.Now().Add(s.stall))
				deadline = true
			}
		}
		if h.length > s.readLimit-int64(len(msg)) {
			return 0, nil, s.fail(closeTooBig, "message over "+strconv.FormatInt(s.readLimit, 10)+" bytes")
		}
		var err error
		if msg, err = s.appendPayload(&h, msg); err != nil {
			return 0, nil, err
		}
		if h.fin {
			if typ == MessageText && !utf8.Valid(msg) {
				return 0, nil, s.fail(closeInvalidData, "text message is not valid UTF-8")
			}
			if msg == nil {
				msg = []byte{}
			}
			return typ, msg, nil
		}
	}
}

// readHeader reads and checks one frame header into h.
func (s *Socket) readHeader(h *header) error {
	var b [8]byte
	if err := s.readFull(b[:2]); err != nil {
		return err
	}
	h.fin, h.op = b[0]&0x80 != 0, b[0]&0x0f
	n := int64(b[1] & 0x7f)
	switch {
	case b[0]&0x70 != 0:
		return s.fail(closeProtocol, "reserved bits set (no extension was negotiated)")
	case h.op > opBinary && h.op < opClose || h.op > opPong:
		return s.fail(closeProtocol, "unknown opcode "+strconv.Itoa(int(h.op)))
	case b[1]&0x80 == 0:
		return s.fail(closeProtocol, "unmasked client frame")
	case h.op >= opClose && (!h.fin || n > maxControlPayload):
		return s.fail(closeProtocol, "fragmented or oversized control frame")
	}
	switch n {
	case 126:
		if err := s.readFull(b[:2]); err != nil {
			return err
		}
		n = int64(binary.BigEndian.Uint16(b[:2]))
	case 127:
		if err := s.readFull(b[:8]); err != nil {
			return err
		}
		if n = int64(binary.BigEndian.Uint64(b[:8])); n < 0 {
			return s.fail(closeProtocol, "frame length over 2^63")
		}
	}
	h.length = n
	return s.readFull(h.key[:])
}

// appendPayload reads h's payload onto msg, unmasked. msg grows only as
// bytes arrive (by at most its length, from 4 KiB), so a header that
// announces a large frame costs nothing until its bytes come, and a
// message sent in many small fragments grows amortised, not by a copy per
// fragment.
func (s *Socket) appendPayload(h *header, msg []byte) ([]byte, error) {
	for off := int64(0); off < h.length; {
		n := int(min(h.length-off, int64(max(payloadStep, len(msg)))))
		start := len(msg)
		msg = slices.Grow(msg, n)[:start+n]
		p := msg[start:]
		if err := s.readFull(p); err != nil {
			return nil, err
		}
		for i := range p {
			p[i] ^= h.key[(off+int64(i))&3]
		}
		off += int64(n)
	}
	return msg, nil
}

// readPayload reads h's payload into p (len(p) == h.length) and unmasks it.
func (s *Socket) readPayload(h *header, p []byte) error {
	if err := s.readFull(p); err != nil {
		return err
	}
	for i := range p {
		p[i] ^= h.key[i&3]
	}
	return nil
}

// readFull fills p with the byte wait kept, what net/http had buffered
// past the request, then from the socket.
func (s *Socket) readFull(p []byte) error {
	if s.hasFirst && len(p) > 0 {
		p[0], p, s.hasFirst = s.first[0], p[1:], false
	}
	for len(p) > 0 {
		if len(s.pending) > 0 {
			n := copy(p, s.pending)
			p, s.pending = p[n:], s.pending[n:]
			if len(s.pending) == 0 {
				s.pending = nil
			}
			continue
		}
		n, err := s.nc.Read(p)
		p = p[n:]
		if err != nil && len(p) > 0 {
			return err
		}
	}
	return nil
}

// peerClosed handles the peer's close frame: it answers one the server did
// not start with the same code, closes the socket and returns the
// *CloseError.
func (s *Socket) peerClosed(payload []byte) error {
	ce := &CloseError{Code: closeNoStatus}
	switch {
	case len(payload) == 1:
		return s.fail(closeProtocol, "close frame with a 1-byte payload")
	case len(payload) >= 2:
		ce.Code, ce.Reason = int(binary.BigEndian.Uint16(payload)), string(payload[2:])
		if !validCloseCode(ce.Code) {
			return s.fail(closeProtocol, "invalid close code "+strconv.Itoa(ce.Code))
		}
		if !utf8.ValidString(ce.Reason) {
			return s.fail(closeInvalidData, "close reason is not valid UTF-8")
		}
	}
	if s.startClose() {
		echo := payload[:0]
		if ce.Code != closeNoStatus {
			echo = binary.BigEndian.AppendUint16(payload[:0], uint16(ce.Code))
		}
		_ = s.out.shut(controlFrame(opClose, echo))
	}
	s.closeNow()
	return ce
}

// validCloseCode reports whether a peer may send code (RFC 6455 section
// 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code < 1000 || code > 1014:
		return false
	}
	return code != 1004 && code != 1005 && code != 1006
}

// fail answers a frame that breaks the protocol: the close frame with
// code, then it reads and drops what the peer still sends until it closes
// (bounded), so that the close frame is not lost to a reset, and closes.
// It returns errProtocol wrapped with the reason. Finish counts such an
// end as the peer's, as it did when the WebSocket library closed these
// itself.
func (s *Socket) fail(code int, reason string) error {
	if s.startClose() {
		_ = s.out.shut(controlFrame(opClose, closePayload(code, reason)))
		// The FIN after the close frame tells the peer nothing more
		// comes, so it closes at once (RFC 6455 7.1.1) rather than
		// waiting for the server to; what it still sends is read and
		// dropped until then, so that the close frame is not lost to a
		// reset.
		closeWrite(s.nc)
		_ = s.nc.SetReadDeadline(time.Now().Add(closeWaitTimeout))
		var sink [256]byte
		for {
			if _, err := s.nc.Read(sink[:]); err != nil {
				break
			}
		}
	}
	s.closeNow()
	return fmt.Errorf("%w: %s (closed with %d)", errProtocol, reason, code)
}

// closeWrite half-closes nc, looking through wrappers that expose the
// connection they wrap; it does nothing where nc cannot.
func closeWrite(nc net.Conn) {
	for {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			return
		}
		w, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		nc = w.NetConn()
	}
}

// pongFits reports whether a pong with an n-byte payload may be written
// now: while the send buffer can be inspected, pongs take at most half of
// the reserve Write leaves free, so a close frame always fits behind them
// (a client that sends pings and reads nothing gets no more pongs).
func (s *Socket) pongFits(n int) bool {
	if s.room == nil {
		return true
	}
	sndbuf, queued, ok := s.room.room()
	return !ok || sndbuf/2-queued-(2+n) >= reserve/2
}

// closePayload is a close frame's payload: code, then reason clipped to fit.
func closePayload(code int, reason string) []byte {
	reason = clipReason(reason)
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return append(p, reason...)
}

// appendHeader appends a server frame's header (never masked).
func appendHeader(b []byte, fin bool, op byte, n int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch {
	case n <= 125:
		return append(b, b0, byte(n))
	case n <= 0xffff:
		return append(b, b0, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, b0, 127), uint64(n))
	}
}

// controlFrame is a whole control frame with payload (at most 125 bytes).
func controlFrame(op byte, payload []byte) []byte {
	return append(appendHeader(make([]byte, 0, 2+len(payload)), true, op, len(payload)), payload...)
}

// writeControl sends a ping or pong now (or with the batch being
// gathered), after any frame being written.
func (s *Socket) writeControl(op byte, payload []byte) error {
	return s.out.writeFrame(controlFrame(op, payload), nil)
}
