package wsconn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// clientFrame is a client frame as RFC 6455 wants it: masked.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b := appendHeader(nil, fin, op, len(payload))
	b[1] |= 0x80
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// serverFrame reads one (unmasked) server frame.
func serverFrame(t *testing.T, r *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read a server frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatal("server frame is masked")
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		_, _ = io.ReadFull(r, e[:])
		n = int(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		_, _ = io.ReadFull(r, e[:])
		n = int(binary.BigEndian.Uint64(e[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatalf("read a server frame's payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

// rawPair is a Socket over a real TCP connection and the raw client end,
// handshake done by hand, so tests can send any bytes.
func rawPair(t *testing.T, cfg Config) (*Socket, net.Conn, *bufio.Reader) {
	t.Helper()
	socks := make(chan *Socket, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := Accept(w, r, cfg)
		if err != nil {
			t.Error(err)
			return
		}
		socks <- s
	}))
	t.Cleanup(srv.Close)
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 6455 section 1.3's example key and answer.
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake answer %d %v", resp.StatusCode, resp.Header)
	}
	s := <-socks
	t.Cleanup(s.Finish)
	return s, nc, br
}

// TestReadMessages: whole and fragmented messages, a ping answered between
// the fragments, a pong of no ping ignored, binary messages.
func TestReadMessages(t *testing.T) {
	s, nc, br := rawPair(t, Config{})
	var in []byte
	in = append(in, clientFrame(true, opText, []byte("hello"))...)
	in = append(in, clientFrame(false, opText, []byte("frag"))...)
	in = append(in, clientFrame(true, opPing, []byte("p1"))...)
	in = append(in, clientFrame(true, opPong, []byte("unsolicited"))...)
	in = append(in, clientFrame(false, opContinuation, []byte("men"))...)
	in = append(in, clientFrame(true, opContinuation, []byte("ted é"))...)
	in = append(in, clientFrame(true, opBinary, []byte{0xff, 0})...)
	in = append(in, clientFrame(true, opText, nil)...)
	if _, err := nc.Write(in); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ  MessageType
		data string
	}{{MessageText, "hello"}, {MessageText, "fragmented é"}, {MessageBinary, "\xff\x00"}, {MessageText, ""}} {
		if err := s.wait(); err != nil {
			t.Fatal(err)
		}
		typ, data, err := s.Read()
		if err != nil || typ != want.typ || string(data) != want.data {
			t.Fatalf("Read: %v %q %v; want %v %q", typ, data, err, want.typ, want.data)
		}
	}
	if op, p := serverFrame(t, br); op != opPong || string(p) != "p1" {
		t.Fatalf("answer to the ping: op %d %q, want a pong p1", op, p)
	}
}

// TestServeStepsPerFrame: each step of Serve reads one message, or one
// control frame outside a message (then Next returns type 0), so the
// reader is back at Serve's wait after a ping; inside a fragmented message
// a control frame does not end the step.
func TestServeStepsPerFrame(t *testing.T) {
	s, nc, br := rawPair(t, Config{})
	type result struct {
		typ  MessageType
		data string
	}
	steps := make(chan result, 8)
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Serve(func() bool {
			typ, data, err := s.Next()
			if err != nil {
				return false
			}
			steps <- result{typ, string(data)}
			return true
		})
	}()
	send := func(frames ...[]byte) {
		t.Helper()
		if _, err := nc.Write(bytes.Join(frames, nil)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want result) {
		t.Helper()
		if got := <-steps; got != want {
			t.Fatalf("step read %+v, want %+v", got, want)
		}
	}
	send(clientFrame(true, opPing, []byte("p1")))
	expect(result{})
	if op, p := serverFrame(t, br); op != opPong || string(p) != "p1" {
		t.Fatalf("op %d %q, want pong p1", op, p)
	}
	send(clientFrame(false, opText, []byte("a")), clientFrame(true, opPing, nil), clientFrame(true, opContinuation, []byte("b")))
	expect(result{MessageText, "ab"})
	send(clientFrame(true, opPong, []byte("x")), clientFrame(true, opText, []byte("c")))
	expect(result{})
	expect(result{MessageText, "c"})
	nc.Close()
	<-served
}

// wrapped is a connection wrapper like internal/edge's listener's.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// TestRoomThroughWrappers: the send buffer of a TCP socket under
// wrappers that expose it is inspected (the gateway's listener wraps every
// connection); a connection that is no TCP socket has none.
func TestRoomThroughWrappers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the send buffer is inspected on Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if r := newRoom(wrapped{wrapped{nc}}); r == nil {
		t.Fatal("no room for a TCP socket under two wrappers")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if r := newRoom(wrapped{a}); r != nil {
		t.Fatal("room for a pipe")
	}
}

// TestReadRefuses: each broken frame is answered with a close frame of
// the right code, and Read returns an error.
func TestReadRefuses(t *testing.T) {
	long := make([]byte, 126)
	for _, tt := range []struct {
		name string
		in   []byte
		code int
	}{
		{"unmasked", appendHeader(nil, true, opText, 0), closeProtocol},
		{"reserved bit", func() []byte { b := clientFrame(true, opText, []byte("x")); b[0] |= 0x40; return b }(), closeProtocol},
		{"unknown opcode", clientFrame(true, 3, nil), closeProtocol},
		{"continuation without a message", clientFrame(true, opContinuation, []byte("x")), closeProtocol},
		{"message inside a fragmented one", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), closeProtocol},
		{"fragmented ping", clientFrame(false, opPing, nil), closeProtocol},
		{"oversized ping", clientFrame(true, opPing, long), closeProtocol},
		{"over the read limit", clientFrame(true, opText, []byte(strings.Repeat("x", 17))), closeTooBig},
		{"over the read limit in fragments", append(clientFrame(false, opText, make([]byte, 10)), clientFrame(true, opContinuation, make([]byte, 10))...), closeTooBig},
		{"text not UTF-8", clientFrame(true, opText, []byte{'a', 0xff}), closeInvalidData},
		{"close with one byte", clientFrame(true, opClose, []byte{3}), closeProtocol},
		{"close with code 1005", clientFrame(true, opClose, []byte{0x03, 0xed}), closeProtocol},
		{"close reason not UTF-8", clientFrame(true, opClose, []byte{0x03, 0xe8, 0xff}), closeInvalidData},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, nc, br := rawPair(t, Config{ReadLimit: 16})
			if _, err := nc.Write(tt.in); err != nil {
				t.Fatal(err)
			}
			read := make(chan error, 1)
			go func() {
				_, _, err := s.Read()
				read <- err
			}()
			op, p := serverFrame(t, br)
			if op != opClose || len(p) < 2 || int(binary.BigEndian.Uint16(p)) != tt.code {
				t.Fatalf("got op %d %q, want close %d", op, p, tt.code)
			}
			nc.Close() // the peer goes: Read stops waiting for it
			if err := <-read; !errors.Is(err, errProtocol) {
				t.Fatalf("Read: %v, want a protocol error", err)
			}
		})
	}
}

// TestPeerClose: a close frame from the peer is answered with the same
// code, and Read returns it.
func TestPeerClose(t *testing.T) {
	s, nc, br := rawPair(t, Config{})
	if _, err := nc.Write(clientFrame(true, opClose, append([]byte{0x0f, 0xa0}, "bye"...))); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Read()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "bye" || CloseStatus(err) != 4000 {
		t.Fatalf("Read: %v, want the peer's close 4000 bye", err)
	}
	if op, p := serverFrame(t, br); op != opClose || !bytes.Equal(p, []byte{0x0f, 0xa0}) {
		t.Fatalf("answer: op %d %q, want close 4000", op, p)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the close: %v, want EOF", err)
	}
}

// TestCloseWithoutReader: a Close while no Read runs reads the peer's
// answer itself, and returns once it came.
func TestCloseWithoutReader(t *testing.T) {
	s, _, client := pair(t)
	read := make(chan error, 1)
	go func() {
		_, err := readText(t, client) // answers the close
		read <- err
	}()
	start := time.Now()
	s.Close(4008, "slow")
	if waited := time.Since(start); waited >= closeWaitTimeout {
		t.Fatalf("Close took %v: it did not see the peer's answer", waited)
	}
	if err := <-read; websocket.CloseStatus(err) != 4008 {
		t.Fatalf("client: %v, want close 4008", err)
	}
	if err := s.Write([]byte("late"), nil); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// TestPing: Ping returns at the peer's pong, which the reader receives;
// without a reader it waits until its context ends.
func TestPing(t *testing.T) {
	s, _, client := pair(t)
	go func() {
		for {
			if _, _, err := client.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := s.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping with nothing reading the pong: %v, want the context's deadline", err)
	}
	cancel()
	reads := make(chan error, 1)
	go func() {
		_, _, err := s.Read()
		reads <- err
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	s.Cut()
	if err := <-reads; err == nil {
		t.Fatal("Read after Cut returned no error")
	}
}

// TestAcceptRefuses: a request that is no valid upgrade gets the HTTP
// error that says why; the subprotocol is the first of ours offered.
func TestAcceptRefuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := Accept(w, r, Config{Subprotocols: []string{"a.v1", "b.v1"}, OriginPatterns: []string{"*.example.com"}})
		if err == nil {
			s.Finish()
		}
	}))
	defer srv.Close()
	good := http.Header{"Upgrade": {"websocket"}, "Connection": {"keep-alive, Upgrade"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	with := func(k, v string) http.Header {
		h := good.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	for _, tt := range []struct {
		name   string
		method string
		h      http.Header
		status int
		want   string // in the body, or the selected subprotocol
	}{
		{"no Upgrade", "GET", with("Upgrade", ""), http.StatusUpgradeRequired, "Upgrade header"},
		{"no Connection upgrade", "GET", with("Connection", "keep-alive"), http.StatusUpgradeRequired, "Connection header"},
		{"POST", "POST", good, http.StatusMethodNotAllowed, "not GET"},
		{"version 8", "GET", with("Sec-Websocket-Version", "8"), http.StatusBadRequest, "version"},
		{"no key", "GET", with("Sec-Websocket-Key", ""), http.StatusBadRequest, "missing Sec-WebSocket-Key"},
		{"short key", "GET", with("Sec-Websocket-Key", "c2hvcnQ="), http.StatusBadRequest, "16 byte"},
		{"foreign origin", "GET", with("Origin", "https://evil.example.net"), http.StatusForbidden, "not authorized"},
		{"allowed origin", "GET", with("Origin", "https://app.example.com"), http.StatusSwitchingProtocols, ""},
		{"subprotocol", "GET", with("Sec-Websocket-Protocol", "c, b.v1, a.v1"), http.StatusSwitchingProtocols, "a.v1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL, nil)
			req.Header = tt.h
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusSwitchingProtocols {
				if got := resp.Header.Get("Sec-Websocket-Protocol"); got != tt.want {
					t.Fatalf("subprotocol %q, want %q", got, tt.want)
				}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), tt.want) {
				t.Fatalf("body %q, want it to say %q", body, tt.want)
			}
		})
	}
}

func TestClipReason(t *testing.T) {
	for _, s := range []string{"", "short", strings.Repeat("a", 123), strings.Repeat("a", 200), strings.Repeat("é", 100)} {
		got := clipReason(s)
		if len(got) > 123 || !utf8.ValidString(got) || !strings.HasPrefix(s, got) || (len(s) <= 123 && got != s) {
			t.Errorf("clipReason(%d bytes) = %d bytes %q", len(s), len(got), got)
		}
	}
}

// FuzzRead feeds arbitrary client bytes to a socket's reader: it returns
// messages within the limit, or an error, and never panics or hangs.
func FuzzRead(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("hi")), int64(16))
	f.Add(append(clientFrame(false, opText, []byte("a")), clientFrame(true, opContinuation, []byte("b"))...), int64(16))
	f.Add(append(clientFrame(true, opPing, []byte("p")), clientFrame(true, opClose, []byte{3, 0xe8})...), int64(16))
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(1<<20))
	f.Fuzz(func(t *testing.T, in []byte, limit int64) {
		if limit <= 0 || limit > 1<<20 {
			limit = 1 << 10
		}
		server, client := net.Pipe()
		defer client.Close()
		s := &Socket{nc: server, stall: time.Second, readLimit: limit}
		s.out.Conn, s.out.stall = server, time.Second
		go func() { _, _ = io.Copy(io.Discard, client) }() // the server's answers
		go func() {
			_, _ = client.Write(in)
			client.Close()
		}()
		for {
			if err := s.wait(); err != nil {
				break
			}
			_, data, err := s.Read()
			if err != nil {
				break
			}
			if int64(len(data)) > limit {
				t.Fatalf("message of %d bytes over the limit %d", len(data), limit)
			}
		}
		s.Finish()
	})
}
