package socketio_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/transport/socketio"
	"github.com/syncgate/syncgate/internal/wstest"
)

const wait = 10 * time.Second

// node is an in-process gateway serving /v1/ws and /socket.io/ from one
// backplane, wired as cmd/gateway wires them.
type node struct {
	*wstest.Node // URL, BP and Metrics; Publish works through it
	SIO          *socketio.Server
}

// nodeConfig tunes a test node: the hub's settings (embedded, so
// c.MaxQueueBytes reads as before) and Socket.IO's own.
type nodeConfig struct {
	hub.Config
	SIO socketio.Config
}

func startNode(t testing.TB, bp backplane.Backplane, tune func(*nodeConfig)) *node {
	t.Helper()
	if bp == nil {
		bp = backplane.NewMemory(backplane.MemoryConfig{})
	}
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(wstest.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	m := metrics.New()
	cfg := nodeConfig{Config: hub.Config{Verifier: v, Logger: log, Metrics: m}}
	if tune != nil {
		tune(&cfg)
	}
	var sio *socketio.Server
	n := &node{Node: wstest.StartNode(t, wstest.NodeConfig{Hub: cfg.Config, Backplane: bp,
		SocketIO: func(h *hub.Hub) (http.Handler, error) {
			s, err := socketio.New(h, cfg.SIO)
			sio = s
			return s, err
		}})}
	n.SIO = sio
	return n
}

func (n *node) sioURL(query string) string {
	u := "ws" + strings.TrimPrefix(n.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	if query != "" {
		u += "&" + query
	}
	return u
}

// frame is one server Engine.IO/Socket.IO packet, parsed leniently.
type frame struct {
	Raw  string
	EIO  byte // Engine.IO type
	SIO  byte // Socket.IO type when EIO is '4'
	NSP  string
	ID   int64 // ack id or -1
	Data json.RawMessage
}

// event is a parsed EVENT packet.
type event struct {
	Name string
	Args []json.RawMessage
}

// State returns the last argument when it is a recovery-state string.
func (e event) State() string {
	if len(e.Args) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(e.Args[len(e.Args)-1], &s) != nil || !strings.HasPrefix(s, "sg1") {
		return ""
	}
	return s
}

func (e event) Decode(t testing.TB, i int, v any) {
	t.Helper()
	if i >= len(e.Args) {
		t.Fatalf("event %s has %d args, want index %d", e.Name, len(e.Args), i)
	}
	if err := json.Unmarshal(e.Args[i], v); err != nil {
		t.Fatalf("event %s arg %d %s: %v", e.Name, i, e.Args[i], err)
	}
}

func parseFrame(s string) frame {
	f := frame{Raw: s, ID: -1}
	if s == "" {
		return f
	}
	f.EIO = s[0]
	if f.EIO != '4' || len(s) < 2 {
		if len(s) > 1 {
			f.Data = json.RawMessage(s[1:])
		}
		return f
	}
	f.SIO = s[1]
	rest := s[2:]
	f.NSP = "/"
	if strings.HasPrefix(rest, "/") {
		nsp, r, _ := strings.Cut(rest, ",")
		f.NSP, rest = nsp, r
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i > 0 {
		f.ID, _ = strconv.ParseInt(rest[:i], 10, 64)
	}
	if i < len(rest) {
		f.Data = json.RawMessage(rest[i:])
	}
	return f
}

// client is a minimal Socket.IO client over a real WebSocket. It answers
// Engine.IO pings unless NoPong, and buffers every other frame.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan frame
	done   chan struct{}
	err    error
	Open   struct {
		SID          string `json:"sid"`
		PingInterval int    `json:"pingInterval"`
		PingTimeout  int    `json:"pingTimeout"`
		MaxPayload   int    `json:"maxPayload"`
	}
	nextAck int64
}

type dialOpts struct {
	Header http.Header
	Query  string
	NoPong bool
	NoRead bool
}

func dial(t testing.TB, n *node, o dialOpts) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	do := &websocket.DialOptions{HTTPHeader: o.Header}
	if o.NoRead {
		// A small fixed receive buffer (no autotuning), so a stalled client
		// backs up into the server's queue quickly.
		do.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(8 << 10)
			}
			return conn, err
		}}}
	}
	ws, _, err := websocket.Dial(ctx, n.sioURL(o.Query), do)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{t: t, ws: ws, frames: make(chan frame, 10000), done: make(chan struct{})}
	t.Cleanup(func() { ws.CloseNow(); <-c.done })
	_, data, err := ws.Read(ctx)
	if err != nil || len(data) == 0 || data[0] != '0' {
		t.Fatalf("handshake: %q, %v", data, err)
	}
	if err := json.Unmarshal(data[1:], &c.Open); err != nil {
		t.Fatalf("handshake %s: %v", data, err)
	}
	if o.NoRead {
		close(c.done)
		return c
	}
	go func() {
		defer close(c.done)
		defer close(c.frames)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			if string(data) == "2" && !o.NoPong {
				_ = ws.Write(context.Background(), websocket.MessageText, []byte("3"))
				continue
			}
			select {
			case c.frames <- parseFrame(string(data)):
			default:
				c.err = errors.New("test client buffer full")
				ws.CloseNow()
				return
			}
		}
	}()
	return c
}

func (c *client) send(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// next returns the next frame that is not a ping.
func (c *client) next() frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection ended: %v", c.err)
		}
		return f
	case <-time.After(wait):
		c.t.Fatal("timed out waiting for a frame")
	}
	return frame{}
}

// closed waits for the connection to end and returns its close status.
func (c *client) closed() websocket.StatusCode {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return websocket.CloseStatus(c.err)
			}
		case <-time.After(wait):
			c.t.Fatal("timed out waiting for the connection to close")
		}
	}
}

// connect sends CONNECT with auth (nil for none) and returns the answer.
func (c *client) connect(auth any) frame {
	c.t.Helper()
	s := "40"
	if auth != nil {
		b, _ := json.Marshal(auth)
		s += string(b)
	}
	c.send(s)
	return c.next()
}

type connectAnswer struct {
	SID     string `json:"sid"`
	PID     string `json:"pid"`
	Message string `json:"message"`
	Data    struct {
		Code string `json:"code"`
	} `json:"data"`
}

func (c *client) mustConnect(auth any) connectAnswer {
	c.t.Helper()
	f := c.connect(auth)
	if f.SIO != '0' {
		c.t.Fatalf("CONNECT answer %q, want 40{sid}", f.Raw)
	}
	var a connectAnswer
	if err := json.Unmarshal(f.Data, &a); err != nil || a.SID == "" || a.PID == "" {
		c.t.Fatalf("CONNECT answer %q: %v", f.Raw, err)
	}
	return a
}

// emit sends an event; with ack it asks for an acknowledgement and returns
// its id.
func (c *client) emit(ack bool, name string, args ...any) int64 {
	c.t.Helper()
	arr := append([]any{name}, args...)
	b, _ := json.Marshal(arr)
	id := int64(-1)
	s := "42"
	if ack {
		c.nextAck++
		id = c.nextAck
		s += strconv.FormatInt(id, 10)
	}
	c.send(s + string(b))
	return id
}

// nextEvent returns the next EVENT, failing on anything else.
func (c *client) nextEvent() event {
	c.t.Helper()
	f := c.next()
	if f.EIO != '4' || f.SIO != '2' {
		c.t.Fatalf("got %q, want an event", f.Raw)
	}
	var args []json.RawMessage
	if err := json.Unmarshal(f.Data, &args); err != nil || len(args) == 0 {
		c.t.Fatalf("event %q: %v", f.Raw, err)
	}
	var e event
	if err := json.Unmarshal(args[0], &e.Name); err != nil {
		c.t.Fatalf("event %q: %v", f.Raw, err)
	}
	e.Args = args[1:]
	return e
}

// expectEvent returns the next event and fails unless it is named name.
func (c *client) expectEvent(name string) event {
	c.t.Helper()
	e := c.nextEvent()
	if e.Name != name {
		c.t.Fatalf("got event %s %s, want %s", e.Name, e.Args, name)
	}
	return e
}

// ackReply is the body of syncgate's acknowledgements.
type ackReply struct {
	OK    bool `json:"ok"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	ProjectID  string `json:"projectId"`
	Room       string `json:"room"`
	Project    string `json:"project"`
	Collection string `json:"collection"`
}

// expectAck returns the next frame, which must be the ack id.
func (c *client) expectAck(id int64) ackReply {
	c.t.Helper()
	f := c.next()
	if f.SIO != '3' || f.ID != id {
		c.t.Fatalf("got %q, want ack %d", f.Raw, id)
	}
	var args []ackReply
	if err := json.Unmarshal(f.Data, &args); err != nil || len(args) != 1 {
		c.t.Fatalf("ack %q: %v", f.Raw, err)
	}
	return args[0]
}

// noFrame fails if a frame arrives within d.
func (c *client) noFrame(d time.Duration) {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			c.t.Fatalf("unexpected frame %q", f.Raw)
		}
	case <-time.After(d):
	}
}

func tokenFor(t testing.TB, user string, projects []string, collections, roles []string) string {
	return wstest.Token(t, user, time.Hour, projects, collections, roles)
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
