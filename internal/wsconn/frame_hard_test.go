package wsconn

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestFragmentsGrowAmortised: a message sent in one-byte fragments is
// reassembled with amortised growth. Before, every fragment reallocated
// the message to its exact new size: 64 KiB in one-byte fragments
// allocated ~2.2 GB and took seconds of CPU.
func TestFragmentsGrowAmortised(t *testing.T) {
	const size = 64 << 10
	s, nc, _ := rawPair(t, Config{ReadLimit: size})
	var wire []byte
	for i := range size {
		op := byte(opContinuation)
		if i == 0 {
			op = opText
		}
		wire = append(wire, clientFrame(i == size-1, op, []byte{'a' + byte(i%26)})...)
	}
	go func() { _, _ = nc.Write(wire) }()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	typ, msg, err := s.Read()
	runtime.ReadMemStats(&after)
	if err != nil || typ != MessageText || len(msg) != size || msg[27] != 'b' {
		t.Fatalf("Read: %v %d bytes, %v", typ, len(msg), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("reassembling %d one-byte fragments allocated %d bytes, want a few times the message", size, alloc)
	}
}

// TestLargeFrameReadAsItArrives: a frame announcing more than it has sent
// yet is read in steps, and its payload unmasked right across them.
func TestLargeFrameReadAsItArrives(t *testing.T) {
	const size = 3*payloadStep + 123
	s, nc, _ := rawPair(t, Config{ReadLimit: 1 << 20})
	want := []byte(strings.Repeat("0123456789abcdef", size/16+1)[:size])
	frame := clientFrame(true, opBinary, want)
	go func() {
		for len(frame) > 0 { // odd pieces: the mask offset must carry over
			n := min(len(frame), 1001)
			if _, err := nc.Write(frame[:n]); err != nil {
				return
			}
			frame = frame[n:]
		}
	}()
	typ, msg, err := s.Read()
	if err != nil || typ != MessageBinary || string(msg) != string(want) {
		t.Fatalf("Read: %v %d bytes (want %d), %v", typ, len(msg), size, err)
	}
}

// TestFragmentedMessageBounded: a fragmented message must end within the
// stall limit of its first fragment, or the socket closes with 1008. A
// client that answered pings between fragments used to hold a message,
// and its bytes, open for ever.
func TestFragmentedMessageBounded(t *testing.T) {
	s, nc, br := rawPair(t, Config{ReadLimit: 1 << 20, StallLimit: 200 * time.Millisecond})
	if _, err := nc.Write(clientFrame(false, opText, []byte("the start"))); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, _, err := s.Read()
		read <- err
	}()
	op, p := serverFrame(t, br)
	if op != opClose || len(p) < 2 || binary.BigEndian.Uint16(p) != closePolicy {
		t.Fatalf("got op %d %q, want close %d", op, p, closePolicy)
	}
	nc.Close() // the peer goes: Read stops waiting for it
	if err := <-read; !errors.Is(err, errProtocol) {
		t.Fatalf("Read: %v, want a protocol error", err)
	}
}

// TestProtocolErrorEndsPromptly: after the close frame that refuses a
// frame, the server half-closes, so a peer that answers and waits for the
// server to close sees the end at once, not after the 5 s wait.
func TestProtocolErrorEndsPromptly(t *testing.T) {
	s, nc, br := rawPair(t, Config{ReadLimit: 16})
	if _, err := nc.Write(appendHeader(nil, true, opText, 0)); err != nil { // unmasked
		t.Fatal(err)
	}
	go func() { _, _, _ = s.Read() }()
	if op, p := serverFrame(t, br); op != opClose || binary.BigEndian.Uint16(p) != closeProtocol {
		t.Fatalf("got op %d %q, want close %d", op, p, closeProtocol)
	}
	if _, err := nc.Write(clientFrame(true, opClose, []byte{0x03, 0xea})); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(closeWaitTimeout - time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the close handshake: %d bytes, %v; want the end of the stream before the close wait's %s", n, err, closeWaitTimeout)
	}
}

// TestPingFloodKeepsCloseFrame: a client that floods pings and reads
// nothing gets pongs only while they leave room for a close frame; the
// reader never blocks on a pong, and the close frame that follows is read
// whole after the pongs. Before, the reader blocked writing a pong until
// the stall limit, and the close frame never arrived.
func TestPingFloodKeepsCloseFrame(t *testing.T) {
	s, nc, br := rawPair(t, Config{ReadLimit: 1 << 10, StallLimit: 30 * time.Second})
	if s.room == nil {
		t.Skip("the send buffer cannot be inspected here")
	}
	_ = nc.(*net.TCPConn).SetReadBuffer(32 << 10)
	ping := clientFrame(true, opPing, []byte(strings.Repeat("p", 125)))
	var wire []byte
	for range 40000 { // 5.2 MB of pings: far more pongs than any send buffer holds
		wire = append(wire, ping...)
	}
	wire = append(wire, clientFrame(true, opText, []byte("end"))...)
	wrote := make(chan error, 1)
	go func() {
		_, err := nc.Write(wire)
		wrote <- err
	}()
	typ, msg, err := s.Read()
	if err != nil || typ != MessageText || string(msg) != "end" {
		t.Fatalf("Read after the ping flood: %v %q %v", typ, msg, err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	go s.Close(4008, "slow consumer")
	pongs := 0
	for {
		op, p := serverFrame(t, br)
		if op == opPong {
			pongs++
			continue
		}
		if op != opClose || binary.BigEndian.Uint16(p) != 4008 {
			t.Fatalf("after %d pongs: op %d %q, want close 4008", pongs, op, p)
		}
		break
	}
	if pongs == 0 || pongs >= 40000 {
		t.Fatalf("%d pongs for 40000 pings, want some, not all", pongs)
	}
	t.Logf("%d pongs, then close 4008", pongs)
}
