package socketio_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/wstest"
)

func msToken(t *testing.T) string {
	return wstest.SignClaims(t, map[string]any{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix() * 1000, "projects": []string{"p1"}})
}

// released waits until n's Socket.IO server holds no connection and no
// subscription.
func released(t *testing.T, n *node) {
	t.Helper()
	eventually(t, "connections and subscriptions released", func() bool {
		return n.Hub.Connections() == 0 && n.Metric(t, "syncgate_connections") == 0 && n.Metric(t, "syncgate_subscriptions") == 0
	})
}

// TestExpInMillisecondsRefused: a token whose exp is in milliseconds is
// refused on CONNECT (auth payload or upgrade header) with a message naming
// the cause, and a refresh with it fails without harm; it used to panic.
func TestExpInMillisecondsRefused(t *testing.T) {
	n := startNode(t, nil, nil)
	bad := msToken(t)
	for name, c := range map[string]*client{
		"auth payload":   dial(t, n, dialOpts{}),
		"upgrade header": dial(t, n, dialOpts{Header: http.Header{"Authorization": {"Bearer " + bad}}}),
	} {
		var auth any
		if name == "auth payload" {
			auth = map[string]string{"token": bad}
		}
		f := c.connect(auth)
		if f.SIO != '4' || !strings.Contains(f.Raw, "exp is not in seconds") {
			t.Fatalf("%s: CONNECT answer %q, want CONNECT_ERROR naming \"exp is not in seconds\"", name, f.Raw)
		}
	}
	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
	id := c.emit(true, "auth", map[string]string{"token": bad})
	if a := c.expectAck(id); a.OK || a.Error.Code != "unauthorized" || !strings.Contains(a.Error.Message, "exp is not in seconds") {
		t.Fatalf("refresh ack %+v", a)
	}
	c.emit(false, "join-project", "p1") // still serving
	c.expectEvent("joined-project")
	if got := n.Metric(t, "syncgate_panics_total"); got != 0 {
		t.Fatalf("%v panics", got)
	}
}

// panicNode starts a node whose verifier panics on wstest.PanicToken.
func panicNode(t *testing.T, tune func(*nodeConfig)) (*node, *wstest.LogBuffer) {
	logs := &wstest.LogBuffer{}
	n := startNode(t, nil, func(c *nodeConfig) {
		c.Verifier = wstest.NewPanicVerifier(t)
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		if tune != nil {
			tune(c)
		}
	})
	return n, logs
}

// TestPanicReleasesConnection is item 2's reproduction: a panic in the
// CONNECT or in the refresh path of a socket with subscriptions closes it
// with 1011, logs once with the stack, counts, and releases the socket and
// its subscriptions (net/http used to recover the panic and skip the
// cleanup: CLOSE-WAIT sockets and a syncgate_subscriptions that never
// went down).
func TestPanicReleasesConnection(t *testing.T) {
	n, logs := panicNode(t, nil)
	tests := []struct {
		name string
		run  func(c *client)
	}{
		{"connect", func(c *client) { c.send(`40{"token":"` + wstest.PanicToken + `"}`) }},
		{"refresh", func(c *client) {
			c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
			c.emit(false, "join-project", "p1")
			c.expectEvent("joined-project")
			c.emit(false, "subscribe", map[string]string{"project": "p1", "collection": "c"})
			c.expectEvent("subscribed")
			if got := n.Metric(t, "syncgate_subscriptions"); got != 2 {
				t.Fatalf("%v subscriptions, want 2", got)
			}
			c.emit(true, "auth", map[string]string{"token": wstest.PanicToken})
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, n, dialOpts{})
			tt.run(c)
			if code := c.closed(); code != websocket.StatusInternalError {
				t.Fatalf("closed with %d, want 1011", code)
			}
			released(t, n)
			if got := n.Metric(t, "syncgate_panics_total", "transport", "socketio"); got != float64(i+1) {
				t.Fatalf("panics{socketio} = %v, want %d", got, i+1)
			}
			if lines := logs.Lines("connection goroutine panicked"); len(lines) != i+1 || !strings.Contains(lines[i], `"stack":"goroutine`) {
				t.Fatalf("%d panic log lines, want %d with a stack", len(lines), i+1)
			}
		})
	}
	dial(t, n, dialOpts{}).mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
}

// TestEveryEndReleasesAndCounts ends sockets by every route: each releases
// its subscriptions and is counted once in syncgate_disconnects_total.
func TestEveryEndReleasesAndCounts(t *testing.T) {
	n, _ := panicNode(t, nil)
	var handshake error // what the client's own Close returned
	tests := []struct {
		name  string
		code  websocket.StatusCode // what the client sees; -1: not checked
		label string
		end   func(c *client)
	}{
		{"client close", websocket.StatusNormalClosure, "peer", func(c *client) { handshake = c.ws.Close(websocket.StatusNormalClosure, "") }},
		{"client vanishes", -1, "peer", func(c *client) { c.ws.CloseNow() }},
		{"engine.io close", -1, "peer", func(c *client) { c.send("1") }},
		{"socket.io disconnect", websocket.StatusNormalClosure, "1000", func(c *client) { c.send("41") }},
		{"protocol error", 4400, "4400", func(c *client) { c.send("9") }},
		{"other user's token", 4003, "4003", func(c *client) {
			c.emit(false, "auth", map[string]string{"token": tokenFor(t, "mallory", []string{"p1"}, nil, nil)})
		}},
		{"panic", websocket.StatusInternalError, "1011", func(c *client) {
			c.emit(false, "auth", map[string]string{"token": wstest.PanicToken})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := n.Metric(t, "syncgate_disconnects_total", "code", tt.label)
			c := dial(t, n, dialOpts{})
			c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
			c.emit(false, "subscribe", map[string]string{"project": "p1", "collection": "c"})
			c.expectEvent("subscribed")
			handshake = errors.New("no close handshake")
			tt.end(c)
			if tt.code != -1 {
				// Close returns nil only when the server answered with the
				// same code; then the client's own Close may have read that
				// answer before its reader goroutine did.
				if code := c.closed(); code != tt.code && handshake != nil {
					t.Fatalf("closed with %d, want %d (%v)", code, tt.code, c.err)
				}
			}
			released(t, n)
			if got := n.Metric(t, "syncgate_disconnects_total", "code", tt.label); got != before+1 {
				t.Fatalf("disconnects{code=%s} = %v, want %v", tt.label, got, before+1)
			}
		})
	}
}

// TestConnectAttemptsLimited: a socket that keeps sending CONNECTs with bad
// tokens is closed with 4001 after 3 failures instead of verifying
// thousands of tokens a second until the auth timeout.
func TestConnectAttemptsLimited(t *testing.T) {
	n := startNode(t, nil, func(c *nodeConfig) { c.AuthTimeout = time.Minute })
	for _, auth := range []string{`{"token":"not.a.jwt"}`, ``, `{"token":42}`} {
		c := dial(t, n, dialOpts{})
		// The node closes after the third; later writes may fail.
		for range 20 {
			if c.ws.Write(context.Background(), websocket.MessageText, []byte("40"+auth)) != nil {
				break
			}
		}
		refusals := 0
		for f := range c.frames {
			if f.SIO != '4' {
				t.Fatalf("auth %s: got %q, want CONNECT_ERROR", auth, f.Raw)
			}
			refusals++
		}
		if code := websocket.CloseStatus(c.err); code != 4001 || refusals != 3 {
			t.Fatalf("auth %s: %d CONNECT_ERRORs, then %v; want 3, then close 4001", auth, refusals, c.err)
		}
	}
	// Three refused tokens and three missing ones; a payload that is not
	// an object of strings is refused before any token check.
	if got := n.Metric(t, "syncgate_auth_failures_total"); got != 6 {
		t.Fatalf("%v auth failures counted, want 6", got)
	}
}

// TestStallEndsWith4008 is the reproduction of a client that stops reading
// while events flow (15 s in the report): with default limits it reads,
// when it resumes after the node gave up on it, what was written before the
// stall was detected, then close 4008 (it used to get a frame cut by the
// 10 s write deadline).
func TestStallEndsWith4008(t *testing.T) {
	n := startNode(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A fixed 256 KiB receive buffer: no autotuning, but above loopback's
	// MSS, so the window reopens at once when the client reads again.
	ws, _, err := websocket.Dial(ctx, n.sioURL(""), &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(256 << 10)
			}
			return conn, err
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	for _, p := range []string{`40{"token":"` + tokenFor(t, "u1", []string{"p"}, nil, nil) + `"}`, `42["subscribe",{"project":"p","collection":"c"}]`} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the subscription", func() bool { return n.Metric(t, "syncgate_subscriptions") == 1 })
	stop := make(chan struct{})
	wait := wstest.Flow(n.URL, "p", "c", 16<<10, 20*time.Millisecond, stop) // ~800 KB/s
	// The stall lasts until the node gives up on the client: its queue
	// overflows or a write waits out the write timeout (10 s). However
	// slowly a loaded machine publishes, the kernel's buffers fill first.
	stalled := time.Now().Add(2 * time.Minute)
	for n.Metric(t, "syncgate_slow_consumer_disconnects_total") != 1 {
		if time.Now().After(stalled) {
			close(stop)
			t.Fatal("no slow-consumer disconnect after a 2-minute stall")
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	frames := 0
	for {
		var data []byte
		if _, data, err = ws.Read(ctx); err != nil {
			break
		}
		frames++
		ok := string(data) == "2" || len(data) > 1 && data[0] == '0' && json.Valid(data[1:]) ||
			len(data) > 2 && data[0] == '4' && json.Valid(data[2:])
		if !ok {
			t.Fatalf("frame %d is cut: %.80q", frames, data)
		}
	}
	if code := websocket.CloseStatus(err); code != 4008 {
		t.Fatalf("after %d frames the stalled client got %v, want close 4008", frames, err)
	}
	eventually(t, "the 4008 counted", func() bool { return n.Metric(t, "syncgate_disconnects_total", "code", "4008") == 1 })
	t.Logf("read %d frames, then close 4008", frames)
}

// TestSubscribeNameErrors: bad names in subscribe and join-project say
// which name and what is wrong with it, not "invalid event".
func TestSubscribeNameErrors(t *testing.T) {
	n := startNode(t, nil, nil)
	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"*"}, nil, nil)})
	for _, tt := range []struct {
		name string
		arg  any
		want string
	}{
		{"subscribe", map[string]string{"project": "bad project", "collection": "c"}, `project "bad project" must match [A-Za-z0-9_-]{1,64}`},
		{"subscribe", map[string]string{"project": "p", "collection": "a/b"}, `collection "a/b" must match [A-Za-z0-9_.-]{1,128}`},
		{"join-project", "bad project", `project "bad project" must match`},
	} {
		id := c.emit(true, tt.name, tt.arg)
		if a := c.expectAck(id); a.OK || a.Error.Code != "bad_request" || !strings.Contains(a.Error.Message, tt.want) || strings.Contains(a.Error.Message, "event") {
			t.Errorf("%s %v: ack %+v, want %q and no mention of an event", tt.name, tt.arg, a, tt.want)
		}
	}
}
