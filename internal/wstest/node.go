package wstest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/server"
	"github.com/syncgate/syncgate/internal/transport/sse"
	"github.com/syncgate/syncgate/internal/transport/ws"
)

// Secret is the HS256 secret of test nodes; Key their publish key.
const (
	Secret = "wstest-secret-0123456789abcdef0123456789"
	Key    = "wstest-publish-key"
)

// Node is an in-process gateway.
type Node struct {
	URL     string // http://127.0.0.1:port
	Hub     *hub.Hub
	BP      backplane.Backplane
	Metrics *metrics.Metrics
	srv     *httptest.Server
	cancel  context.CancelFunc
}

// NodeConfig tunes a test node; zero values take hub defaults.
type NodeConfig struct {
	Hub       hub.Config // Verifier, Logger and Metrics are filled in when nil
	Backplane backplane.Backplane
	// SSE configures /v1/sse.
	SSE sse.Config
	// Verifier overrides the HS256 verifier built from Secret.
	Verifier hub.TokenVerifier
	// SocketIO, when set, makes the handler mounted at /socket.io/ on the
	// node's hub (a transport package's tests pass their server).
	SocketIO func(h *hub.Hub) (http.Handler, error)
}

// StartNode starts a gateway on a loopback port; it stops at test cleanup.
func StartNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	if cfg.Backplane == nil {
		cfg.Backplane = backplane.NewMemory(backplane.MemoryConfig{})
	}
	if cfg.Hub.Verifier == nil {
		v := cfg.Verifier
		if v == nil {
			av, err := auth.NewVerifier(auth.Config{Secret: []byte(Secret)})
			if err != nil {
				t.Fatal(err)
			}
			v = av
		}
		cfg.Hub.Verifier = v
	}
	if cfg.Hub.Logger == nil {
		cfg.Hub.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Hub.Metrics == nil {
		cfg.Hub.Metrics = metrics.New()
	}
	h, err := hub.New(cfg.Hub, cfg.Backplane)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	var sio http.Handler
	if cfg.SocketIO != nil {
		if sio, err = cfg.SocketIO(h); err != nil {
			cancel()
			t.Fatal(err)
		}
	}
	var ready func() error
	if c, ok := cfg.Backplane.(backplane.Checker); ok {
		ready = c.Ready
	}
	srv := httptest.NewServer(server.Handler(server.Config{
		Hub: h, WS: ws.New(h), SSE: sse.New(h, cfg.SSE), SocketIO: sio, Publisher: cfg.Backplane, Ready: ready, Keys: auth.ParseKeys(Key),
		Metrics: cfg.Hub.Metrics, Logger: cfg.Hub.Logger,
	}))
	n := &Node{URL: srv.URL, Hub: h, BP: cfg.Backplane, Metrics: cfg.Hub.Metrics, srv: srv, cancel: cancel}
	t.Cleanup(n.Stop)
	return n
}

// WSURL is the node's client endpoint.
func (n *Node) WSURL() string { return "ws" + strings.TrimPrefix(n.URL, "http") + "/v1/ws" }

// Stop drains the node (closing clients with 1012) and stops it; it is
// idempotent.
func (n *Node) Stop() {
	if n.cancel == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.Hub.Drain(ctx, 0)
	n.srv.Close()
	n.cancel()
	_ = n.BP.Close()
	n.cancel = nil
}

// Token mints an HS256 token for user with the given projects, valid for
// ttl, signed with Secret. Optional collections and roles follow.
func Token(t testing.TB, user string, ttl time.Duration, projects []string, collections, roles []string) string {
	t.Helper()
	tok, err := auth.SignHS256([]byte(Secret), auth.Claims{
		Subject: user, ExpiresAt: time.Now().Add(ttl), Projects: projects, Collections: collections, Roles: roles,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
