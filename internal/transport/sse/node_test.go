package sse_test

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/server"
	"github.com/syncgate/syncgate/internal/transport/sse"
	"github.com/syncgate/syncgate/internal/transport/ws"
	"github.com/syncgate/syncgate/internal/wstest"
)

// countComments reads the raw stream of resp until n comment lines went
// by, and reports whether they did before the stream ended.
func countComments(resp *http.Response, n int) bool {
	sc := bufio.NewScanner(resp.Body)
	for seen := 0; sc.Scan(); {
		if strings.HasPrefix(sc.Text(), ":") {
			if seen++; seen == n {
				return true
			}
		}
	}
	return false
}

func TestStreamKeepAlive(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{SSE: sse.Config{KeepAlive: 20 * time.Millisecond}})
	resp, cancel := get(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer(token(t, time.Hour, "demo")))
	defer cancel()
	defer resp.Body.Close()
	if !countComments(resp, 3) {
		t.Fatal("the idle stream ended before 3 keep-alive comments")
	}
}

// TestStreamSharesConnectionLimit: MaxConnections counts WebSocket and SSE
// sessions together, in the engine's one registry.
func TestStreamSharesConnectionLimit(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxConnections: 1}})
	tok := token(t, time.Hour, "demo")
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	resp, cancel := get(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer(tok))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "node is full") {
		t.Fatalf("SSE beside a WebSocket on a node of one connection: %d %s, want 503 node is full", resp.StatusCode, body)
	}
	c.WS.CloseNow()
	n.AwaitReleased(t, n.Hub.Connections)
	s := openStream(t, sseURL(n.URL, []string{"demo/todos"}, nil), bearer(tok))
	s.subscribed()
}

// TestStreamOutlivesHTTPTimeouts serves /v1/sse behind the node's edge: a
// stream lives past the write timeout (edge.Stream), and it stops counting
// as unauthenticated once its token verified (edge.Authenticated).
func TestStreamOutlivesHTTPTimeouts(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	ec := edge.Config{HeaderTimeout: 100 * time.Millisecond, BodyTimeout: 100 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxUnauthenticated: 1}
	h := server.Handler(server.Config{Hub: n.Hub, WS: ws.New(n.Hub), SSE: sse.New(n.Hub, sse.Config{KeepAlive: 50 * time.Millisecond}),
		Publisher: n.BP, Keys: auth.ParseKeys(wstest.Key), Logger: quietLog()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := ec.NewListener(ln)
	srv := ec.Server(h, log.New(discard{}, "", 0))
	go func() { _ = srv.Serve(gate) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Hub.Drain(ctx, 0)
		_ = srv.Shutdown(ctx)
	}()
	base := "http://" + ln.Addr().String()
	resp, cancel := get(t, sseURL(base, []string{"demo/todos"}, nil), bearer(token(t, time.Hour, "demo")))
	defer cancel()
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Ten keep-alives 50ms apart: well past the 300ms write timeout.
	if !countComments(resp, 10) {
		t.Fatal("the stream ended within the HTTP write timeout")
	}
	if p := gate.Pending(); p != 0 {
		t.Errorf("%d connections pending authentication; the stream's should be released", p)
	}
	// The one unauthenticated slot is free for another client.
	r2, c2 := get(t, base+"/healthz", nil)
	r2.Body.Close()
	c2()
	if r2.StatusCode != 200 {
		t.Errorf("/healthz beside the stream: %d", r2.StatusCode)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
