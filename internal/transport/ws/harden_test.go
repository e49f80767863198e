package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/transport/ws"
	"github.com/syncgate/syncgate/internal/wstest"
)

// msExp is the exp a backend writing milliseconds (Date.now() + 1 h) makes.
func msExp() int64 { return time.Now().Add(time.Hour).Unix() * 1000 }

func msToken(t *testing.T) string {
	return wstest.SignClaims(t, map[string]any{"sub": "u1", "exp": msExp(), "projects": []string{"p1"}})
}

// closeReason returns the close frame's reason of a client's end.
func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

// TestExpInMillisecondsRefused: a correctly signed token whose exp is in
// milliseconds (past the year 10000) panicked the process on every path
// while encoding ready.expiresAt. It is refused with 4001 naming the cause,
// and on a live connection a refresh with it is an error that leaves the
// connection open.
func TestExpInMillisecondsRefused(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	bad := msToken(t)
	for _, tt := range []struct {
		name string
		opts wstest.DialOptions
	}{
		{"upgrade header", wstest.DialOptions{Token: bad}},
		{"first auth message", wstest.DialOptions{Token: bad, FirstMessage: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := wstest.TryDial(t, n.WSURL(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if code := c.Closed(); code != 4001 || !strings.Contains(closeReason(c.Err()), "exp is not in seconds") {
				t.Fatalf("closed with %d %q, want 4001 naming \"exp is not in seconds\"", code, closeReason(c.Err()))
			}
		})
	}
	t.Run("refresh", func(t *testing.T) {
		c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p1")})
		c.Subscribe("s", "p1", "c", "")
		c.Send(map[string]any{"op": "auth", "id": "r", "token": bad})
		if f := c.Expect("error"); f.Code != "unauthorized" || !strings.Contains(f.Message, "exp is not in seconds") {
			t.Fatalf("refresh answer %s", f.Raw)
		}
		n.Publish(t, wstest.Doc("p1", "c", 1))
		c.Events(1) // still open and subscribed
	})
	if got := n.Metric(t, "syncgate_panics_total"); got != 0 {
		t.Fatalf("%v panics", got)
	}
}

// panicNode is a node whose verifier panics on wstest.PanicToken, logging
// to a buffer.
func panicNode(t *testing.T, cfg hub.Config) (*wstest.Node, *wstest.LogBuffer) {
	logs := &wstest.LogBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	return wstest.StartNode(t, wstest.NodeConfig{Hub: cfg, Verifier: wstest.NewPanicVerifier(t)}), logs
}

// released waits until n holds no connection and no subscription.
func released(t *testing.T, n *wstest.Node) {
	t.Helper()
	eventually(t, "connections and subscriptions released", func() bool {
		return n.Hub.Connections() == 0 && n.Metric(t, "syncgate_connections") == 0 && n.Metric(t, "syncgate_subscriptions") == 0
	})
}

// TestPanicClosesWith1011: a panic in a connection goroutine (the reader,
// before and after authentication) closes that connection with 1011, is
// logged once with its stack and counted, releases the connection's
// subscriptions, and the node goes on serving.
func TestPanicClosesWith1011(t *testing.T) {
	n, logs := panicNode(t, hub.Config{})
	tests := []struct {
		name string
		run  func(t *testing.T) *wstest.Client
	}{
		{"upgrade header", func(t *testing.T) *wstest.Client {
			c, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: wstest.PanicToken})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"first auth message", func(t *testing.T) *wstest.Client {
			c, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: wstest.PanicToken, FirstMessage: true})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"refresh", func(t *testing.T) *wstest.Client {
			c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p1")})
			c.Subscribe("s", "p1", "c", "")
			c.Subscribe("w", "p1", "*", "")
			c.Send(map[string]any{"op": "auth", "token": wstest.PanicToken})
			return c
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.run(t)
			if code := c.Closed(); code != websocket.StatusInternalError {
				t.Fatalf("closed with %d, want 1011 (%v)", code, c.Err())
			}
			released(t, n)
			if got := n.Metric(t, "syncgate_panics_total", "transport", "ws"); got != float64(i+1) {
				t.Fatalf("syncgate_panics_total{transport=ws} = %v, want %d", got, i+1)
			}
			lines := logs.Lines("connection goroutine panicked")
			if len(lines) != i+1 || !strings.Contains(lines[i], `"stack":"goroutine`) || !strings.Contains(lines[i], "verifier panics on request") {
				t.Fatalf("panic log lines %d, want %d with a stack: %s", len(lines), i+1, lines)
			}
			if got := n.Metric(t, "syncgate_disconnects_total", "code", "1011"); got != float64(i+1) {
				t.Fatalf("disconnects{code=1011} = %v, want %d", got, i+1)
			}
		})
	}
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p1")})
	c.Subscribe("s", "p1", "c", "")
	n.Publish(t, wstest.Doc("p1", "c", 7))
	if got := c.Events(1); wstest.Seq(t, got[0]) != 7 {
		t.Fatalf("after the panics got %+v", got)
	}
}

// TestEveryEndReleasesAndCounts ends connections by every route and checks
// that each one's subscriptions and registration are released and that
// syncgate_disconnects_total counts it once, by the code the server sent.
func TestEveryEndReleasesAndCounts(t *testing.T) {
	n, _ := panicNode(t, hub.Config{MaxMessageBytes: 1024})
	var handshake error // what the client's own Close returned
	tests := []struct {
		name string
		code websocket.StatusCode // what the client sees
		le   string               // the disconnects label
		end  func(c *wstest.Client)
	}{
		{"client close", websocket.StatusNormalClosure, "peer", func(c *wstest.Client) {
			handshake = c.WS.Close(websocket.StatusNormalClosure, "bye")
		}},
		{"client vanishes", -1, "peer", func(c *wstest.Client) { c.WS.CloseNow() }},
		{"protocol error", 4400, "4400", func(c *wstest.Client) {
			ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
			defer cancel()
			_ = c.WS.Write(ctx, websocket.MessageBinary, []byte{1})
		}},
		{"oversized frame", websocket.StatusMessageTooBig, "peer", func(c *wstest.Client) {
			c.Send(`{"op":"ping","id":"` + strings.Repeat("x", 2000) + `"}`)
		}},
		{"other user's token", 4003, "4003", func(c *wstest.Client) {
			c.Send(map[string]any{"op": "auth", "token": token(t, "mallory", "p1")})
		}},
		{"panic", websocket.StatusInternalError, "1011", func(c *wstest.Client) {
			c.Send(map[string]any{"op": "auth", "token": wstest.PanicToken})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := n.Metric(t, "syncgate_disconnects_total", "code", tt.le)
			c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p1")})
			c.Subscribe("a", "p1", "a", "")
			c.Subscribe("b", "p1", "*", "")
			eventually(t, "two subscriptions", func() bool { return n.Metric(t, "syncgate_subscriptions") == 2 })
			handshake = errors.New("no close handshake")
			tt.end(c)
			if tt.code != -1 {
				// Close returns nil only when the server answered with the
				// same code; then the client's own Close may have read that
				// answer before its reader goroutine did.
				if code := c.Closed(); code != tt.code && handshake != nil {
					t.Fatalf("closed with %d, want %d (%v)", code, tt.code, c.Err())
				}
			}
			released(t, n)
			if got := n.Metric(t, "syncgate_disconnects_total", "code", tt.le); got != before+1 {
				t.Fatalf("disconnects{code=%s} = %v, want %v", tt.le, got, before+1)
			}
		})
	}
}

// TestRefusedTokensCounted: every 4001 is counted (the counter showed 2
// after 5,000 refused tokens: the refusal bypassed the writer that counted).
func TestRefusedTokensCounted(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	const refused = 50
	for i := 0; i < refused; i++ {
		c, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: "not.a.jwt", FirstMessage: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		if code := c.Closed(); code != 4001 {
			t.Fatalf("closed with %d, want 4001", code)
		}
	}
	eventually(t, "every refusal counted", func() bool {
		return n.Metric(t, "syncgate_disconnects_total", "code", "4001") == refused
	})
	if got := n.Metric(t, "syncgate_disconnects_total"); got != refused {
		t.Fatalf("disconnects_total = %v, want %d", got, refused)
	}
}

// dialSmallBuffer dials /v1/ws with a fixed 256 KiB receive buffer (no
// autotuning, but above loopback's 64 KiB MSS, so the window reopens at
// once when the client reads again) and reads nothing: a client that
// stalls.
func dialSmallBuffer(t *testing.T, url, tok string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{ws.Subprotocol},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + tok}},
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(256 << 10)
			}
			return conn, err
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// TestStallEndsWith4008 is the reproduction of a client that stops reading
// while events flow (15 s in the report): it used to get a frame cut in half
// by the 10 s write deadline and EOF. With default limits it now reads, when
// it resumes after the node gave up on it, what was written before the stall
// was detected, then close 4008.
func TestStallEndsWith4008(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	ws := dialSmallBuffer(t, n.WSURL(), token(t, "u1", "p"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":"s","project":"p","collection":"c"}`)); err != nil {
		t.Fatal(err)
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
	var err error
	for {
		var data []byte
		if _, data, err = ws.Read(ctx); err != nil {
			break
		}
		frames++
		if !json.Valid(data) {
			t.Fatalf("frame %d is not JSON: %.80q", frames, data)
		}
	}
	if code := websocket.CloseStatus(err); code != 4008 {
		t.Fatalf("after %d frames the stalled client got %v, want close 4008", frames, err)
	}
	if got := n.Metric(t, "syncgate_slow_consumer_disconnects_total"); got != 1 {
		t.Fatalf("slow consumer disconnects %v, want 1", got)
	}
	eventually(t, "the 4008 counted", func() bool { return n.Metric(t, "syncgate_disconnects_total", "code", "4008") == 1 })
	t.Logf("read %d frames, then close 4008: %s", frames, closeReason(err))
}

// TestUpgradeNeedsSubprotocol: an upgrade that does not offer syncgate.v1
// is refused with an HTTP error that says what to send.
func TestUpgradeNeedsSubprotocol(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	for _, protos := range [][]string{nil, {"chat", "syncgate.v2"}} {
		ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
		_, resp, err := websocket.Dial(ctx, n.WSURL(), &websocket.DialOptions{
			Subprotocols: protos, HTTPHeader: http.Header{"Authorization": {"Bearer " + token(t, "u1", "p")}},
		})
		cancel()
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("subprotocols %v: %v, %v; want HTTP 400", protos, err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "syncgate.v1 is required") {
			t.Fatalf("subprotocols %v: body %q", protos, body)
		}
	}
	wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p")}) // with it: fine
}

// TestSubscribeNameErrors: a bad name in subscribe says which name and what
// is wrong with it, not "invalid event".
func TestSubscribeNameErrors(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "*")})
	for _, tt := range []struct{ msg, want string }{
		{`{"op":"subscribe","id":"1","project":"bad project","collection":"c"}`, `project "bad project" must match [A-Za-z0-9_-]{1,64}`},
		{`{"op":"subscribe","id":"1","project":"","collection":"c"}`, `project "" must match`},
		{`{"op":"subscribe","id":"1","project":"p","collection":"a/b"}`, `collection "a/b" must match [A-Za-z0-9_.-]{1,128} (or "*" for every collection)`},
		{`{"op":"unsubscribe","id":"1","project":"p","collection":"**"}`, `collection "**" must match`},
	} {
		c.Send(tt.msg)
		f := c.Expect("error")
		if f.Code != "bad_request" || !strings.Contains(f.Message, tt.want) || strings.Contains(f.Message, "event") {
			t.Errorf("%s: got %q, want %q and no mention of an event", tt.msg, f.Message, tt.want)
		}
	}
}
