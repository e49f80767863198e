package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testlog"
	"github.com/syncgate/syncgate/internal/wstest"
)

// gatewayProc is a gateway started by run, as `go run ./cmd/gateway` would
// with the given environment (development mode: generated secret and key).
type gatewayProc struct {
	addr, metricsAddr, token, key string
	stderr                        *testlog.Buffer
}

// startDevGateway runs the gateway until test cleanup, which stops it and
// checks that it drained without error.
func startDevGateway(t *testing.T, vars map[string]string) *gatewayProc {
	t.Helper()
	e := map[string]string{"SYNCGATE_ADDR": "127.0.0.1:0", "SYNCGATE_SHUTDOWN_GRACE": "100ms"}
	for k, v := range vars {
		e[k] = v
	}
	var stdout testlog.Buffer
	g := &gatewayProc{stderr: &testlog.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, env(e), &stdout, g.stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	wantMetrics := e["SYNCGATE_METRICS_ADDR"] != ""
	deadline := time.Now().Add(wstest.Wait)
	for g.addr == "" || g.key == "" || g.token == "" || (wantMetrics && g.metricsAddr == "") {
		select {
		case err := <-done:
			t.Fatalf("gateway exited: %v\n%s", err, g.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start: %q", stdout.String())
		}
		out := stdout.String()
		if m := regexp.MustCompile(`development node on http://(\S+) `).FindStringSubmatch(out); m != nil {
			g.addr = m[1]
		}
		if m := regexp.MustCompile(`Bearer (dev-[0-9a-f]+)'`).FindStringSubmatch(out); m != nil {
			g.key = m[1]
		}
		if m := regexp.MustCompile(`#token=(\S+)`).FindStringSubmatch(out); m != nil {
			g.token = m[1]
		}
		if m := regexp.MustCompile(`msg="metrics serving" addr=(\S+)`).FindStringSubmatch(g.stderr.String()); m != nil {
			g.metricsAddr = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

// metric reads one unlabelled sample from the separate metrics address.
func (g *gatewayProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func awaitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wstest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedWithin reads conn until the server ends it and fails the test when
// that takes longer than limit (the read deadline): a held connection.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (read %q)", limit, got)
	}
	return string(got)
}

// TestTrickledRequestsAreClosed sends request bodies one byte at a time, on
// /v1/publish without a key and on /healthz, and leaves a keep-alive
// connection idle: the gateway closes each (on main it held them all
// forever: no read or idle timeout).
func TestTrickledRequestsAreClosed(t *testing.T) {
	g := startDevGateway(t, map[string]string{
		"SYNCGATE_HTTP_HEADER_TIMEOUT": "500ms",
		"SYNCGATE_HTTP_BODY_TIMEOUT":   "1s",
		"SYNCGATE_HTTP_WRITE_TIMEOUT":  "3s",
		"SYNCGATE_HTTP_IDLE_TIMEOUT":   "500ms",
	})
	for _, tt := range []struct{ name, head string }{
		{"publish body without a key", "POST /v1/publish HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"},
		{"healthz body", "GET /healthz HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n"},
		{"headers that never end", "GET /healthz HTTP/1.1\r\nHost: gw\r\n"},
	} {
		head := tt.head
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			defer conn.Close() // ends the trickle if the test fails first
			wg.Go(func() {
				// One byte every 20 ms: never idle long enough for an idle
				// timeout, so only a whole-request deadline ends it.
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for range tick.C {
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			})
			start := time.Now()
			got := closedWithin(t, conn, 60*time.Second)
			t.Logf("closed after %s, answer %q", time.Since(start).Round(time.Millisecond), firstLine(got))
		})
	}

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("healthz: %d, close %v; want a 200 that keeps the connection", resp.StatusCode, resp.Close)
		}
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle keep-alive connection: %v, want EOF (closed by the idle timeout)", err)
		}
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestUnauthenticatedBound fills SYNCGATE_MAX_UNAUTHENTICATED with
// connections that send nothing: the next connection, a WebSocket upgrade
// and a publish are refused with 503, while authenticated WebSockets (by
// header and by first message) keep being served; freeing a slot lets new
// clients in.
func TestUnauthenticatedBound(t *testing.T) {
	g := startDevGateway(t, map[string]string{"SYNCGATE_MAX_UNAUTHENTICATED": "3", "SYNCGATE_METRICS_ADDR": "127.0.0.1:0"})
	byHeader := wstest.Dial(t, "ws://"+g.addr+"/v1/ws", wstest.DialOptions{Token: g.token})
	byMessage := wstest.Dial(t, "ws://"+g.addr+"/v1/ws", wstest.DialOptions{Token: g.token, FirstMessage: true})
	sio := dialSocketIO(t, g.addr, "BEARER "+g.token)
	byHeader.Subscribe("1", "demo", "todos", "")
	byMessage.Subscribe("1", "demo", "todos", "")
	// Authenticated connections hold no slot.
	awaitTrue(t, "no pending connection", func() bool { return g.metric(t, "syncgate_unauthenticated_connections") == 0 })

	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	awaitTrue(t, "three pending connections", func() bool { return g.metric(t, "syncgate_unauthenticated_connections") == 3 })

	extra, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if got := closedWithin(t, extra, wstest.Wait); !strings.HasPrefix(got, "HTTP/1.1 503 ") {
		t.Fatalf("connection beyond the bound got %q, want a 503", got)
	}
	start := time.Now()
	_, err = wstest.TryDial(t, "ws://"+g.addr+"/v1/ws", wstest.DialOptions{Token: g.token})
	if err == nil {
		t.Fatal("a WebSocket upgrade beyond the bound was accepted")
	}
	t.Logf("upgrade beyond the bound: %v after %s", err, time.Since(start))
	if g.metric(t, "syncgate_unauthenticated_refused_total") < 2 {
		t.Fatal("refusals not counted")
	}

	// The authenticated sockets are served meanwhile.
	for _, c := range []*wstest.Client{byHeader, byMessage} {
		c.Send(map[string]any{"op": "ping", "id": "p"})
		c.Expect("pong")
	}
	sio.ping(t)

	// A freed slot admits a publisher, whose key releases it at once, and
	// the event reaches both sockets.
	idle[0].Close()
	awaitTrue(t, "a free slot", func() bool { return g.metric(t, "syncgate_unauthenticated_connections") == 2 })
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.addr+"/v1/publish",
		strings.NewReader(`{"type":"document:created","project":"demo","collection":"todos","documentId":"t1"}`))
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish through a freed slot: %d", resp.StatusCode)
	}
	for _, c := range []*wstest.Client{byHeader, byMessage} {
		if evs := c.Events(1); evs[0].DocumentID != "t1" {
			t.Fatalf("got %+v", evs)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	for _, c := range idle[1:] {
		c.Close()
	}
	awaitTrue(t, "every slot free", func() bool { return g.metric(t, "syncgate_unauthenticated_connections") == 0 })
	wstest.Dial(t, "ws://"+g.addr+"/v1/ws", wstest.DialOptions{Token: g.token})
}

// TestPublishTimeoutDuringRedisFreeze freezes the gateway's redis-server
// with SIGSTOP: each publish answers 504 (the outcome is unknown) within
// SYNCGATE_PUBLISH_TIMEOUT plus slack. On main every one took 5.0 s, go-redis's
// read timeout, whatever the documented 2 s said.
func TestPublishTimeoutDuringRedisFreeze(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 500 * time.Millisecond
	g := startDevGateway(t, map[string]string{"SYNCGATE_REDIS_URL": srv.URL(), "SYNCGATE_PUBLISH_TIMEOUT": timeout.String()})
	publish := func() int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+g.addr+"/v1/publish",
			strings.NewReader(`{"type":"insert","project":"p","collection":"c"}`))
		req.Header.Set("Authorization", "Bearer "+g.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := publish(); code != 200 {
		t.Fatalf("publish before the freeze: %d", code)
	}
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer thaw()
	for i := range 3 {
		start := time.Now()
		code := publish()
		took := time.Since(start)
		t.Logf("publish %d during the freeze: %d after %s", i, code, took.Round(time.Millisecond))
		if code != http.StatusGatewayTimeout && code != http.StatusServiceUnavailable {
			t.Fatalf("publish %d during the freeze answered %d, want 504 or 503", i, code)
		}
		if took > timeout+time.Second {
			t.Fatalf("publish %d during the freeze took %s; SYNCGATE_PUBLISH_TIMEOUT is %s", i, took, timeout)
		}
	}
	thaw()
	awaitTrue(t, "publishing after the freeze", func() bool { return publish() == 200 })
}

func TestEdgeConfigErrors(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"SYNCGATE_PUBLISH_TIMEOUT", "-1s", `SYNCGATE_PUBLISH_TIMEOUT="-1s": must not be negative`},
		{"SYNCGATE_PUBLISH_TIMEOUT", "0", `SYNCGATE_PUBLISH_TIMEOUT="0"`},
		{"SYNCGATE_HTTP_HEADER_TIMEOUT", "-5s", `SYNCGATE_HTTP_HEADER_TIMEOUT="-5s"`},
		{"SYNCGATE_HTTP_BODY_TIMEOUT", "soon", `SYNCGATE_HTTP_BODY_TIMEOUT="soon"`},
		{"SYNCGATE_HTTP_WRITE_TIMEOUT", "-1m", `SYNCGATE_HTTP_WRITE_TIMEOUT="-1m"`},
		{"SYNCGATE_HTTP_WRITE_TIMEOUT", "10s", `SYNCGATE_HTTP_WRITE_TIMEOUT="10s": must exceed SYNCGATE_HTTP_BODY_TIMEOUT (30s)`},
		{"SYNCGATE_HTTP_IDLE_TIMEOUT", "-1ns", `SYNCGATE_HTTP_IDLE_TIMEOUT="-1ns"`},
		{"SYNCGATE_MAX_UNAUTHENTICATED", "-3", `SYNCGATE_MAX_UNAUTHENTICATED="-3": want an integer >= 1`},
		{"SYNCGATE_MAX_UNAUTHENTICATED", "0", `SYNCGATE_MAX_UNAUTHENTICATED="0"`},
	}
	for _, tt := range tests {
		_, err := loadConfig(nil, env(map[string]string{tt.name: tt.value}))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%s: error %v, want one containing %q", tt.name, tt.value, err, tt.want)
		}
	}
	c, err := loadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublishTimeout != 2*time.Second || c.Edge.HeaderTimeout != 10*time.Second || c.Edge.BodyTimeout != 30*time.Second ||
		c.Edge.WriteTimeout != 60*time.Second || c.Edge.IdleTimeout != 90*time.Second || c.Edge.MaxUnauthenticated != 1000 {
		t.Fatalf("defaults: publish %s, edge %+v", c.PublishTimeout, c.Edge)
	}
}

// sioClient is a bare Engine.IO v4 / Socket.IO v5 client over a WebSocket.
type sioClient struct{ ws *websocket.Conn }

// dialSocketIO opens /socket.io/ with the given Authorization header and
// joins the default namespace with no auth payload (so the header's token
// is the one used), failing unless the CONNECT is accepted.
func dialSocketIO(t *testing.T, addr, authorization string) *sioClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {authorization}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &sioClient{ws}
	if f := c.read(t); !strings.HasPrefix(f, "0{") {
		t.Fatalf("engine.io open: %q", f)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if f := c.read(t); !strings.HasPrefix(f, "40{") {
		t.Fatalf("socket.io CONNECT with %q answered %q", strings.Fields(authorization)[0], f)
	}
	return c
}

func (c *sioClient) read(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// ping sends an Engine.IO ping and awaits the pong.
func (c *sioClient) ping(t *testing.T) {
	t.Helper()
	if err := c.ws.Write(context.Background(), websocket.MessageText, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	for {
		if f := c.read(t); f == "3probe" {
			return
		}
	}
}
