package ws_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/transport/ws"
	"github.com/syncgate/syncgate/internal/wstest"
)

// webhookNode starts a node whose only authentication is the webhook.
func webhookNode(t *testing.T, hook *wstest.Webhook, timeout time.Duration) *wstest.Node {
	t.Helper()
	m := metrics.New()
	v, err := auth.NewVerifier(auth.Config{Webhook: auth.WebhookConfig{URL: hook.URL, Timeout: timeout, Logger: slog.New(slog.DiscardHandler), Metrics: m}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return wstest.StartNode(t, wstest.NodeConfig{Verifier: v, Hub: hub.Config{AuthTimeout: 2 * time.Second, Metrics: m}})
}

func TestWebhookCredential(t *testing.T) {
	hook := wstest.StartWebhook(t)
	hook.Grant("sk_alice", "alice", time.Hour, "p")
	n := webhookNode(t, hook, 0)

	wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: "sk_alice"})
	c2, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: "sk_alice", FirstMessage: true})
	if err != nil {
		t.Fatal(err)
	}
	f := c2.Expect("ready")
	if f.User != "alice" || f.ExpiresAt.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("ready %s, want user alice and the webhook's exp", f.Raw)
	}
	c2.Subscribe("1", "p", "c", "")
	n.Publish(t, wstest.Doc("p", "c", 1))
	c2.Events(1)
	if got := hook.Calls("sk_alice"); got != 1 {
		t.Fatalf("%d webhook calls for two connections, want 1 (cached)", got)
	}
	if tr := hook.Transports(); len(tr) != 1 || tr[0] != "ws" {
		t.Fatalf("transports %v, want [ws]", tr)
	}

	refused, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: "sk_unknown"})
	if err != nil {
		t.Fatal(err)
	}
	if code := refused.Closed(); code != 4001 {
		t.Fatalf("refused credential closed with %d, want 4001", code)
	}
}

// TestWebhookUnavailable: a failing or slow webhook closes with 1013, never
// 4001, the node stays ready, and the credential works once it answers.
func TestWebhookUnavailable(t *testing.T) {
	hook := wstest.StartWebhook(t)
	n := webhookNode(t, hook, 200*time.Millisecond)
	for _, tt := range []struct {
		name  string
		setup func()
	}{
		{"500", func() { hook.Answer("sk_k", wstest.WebhookAnswer{Status: 500}) }},
		{"malformed", func() { hook.Answer("sk_k", wstest.WebhookAnswer{Claims: map[string]any{"sub": 42}}) }},
		{"slow", func() { hook.Grant("sk_k", "u", time.Hour, "p"); hook.Hold() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			defer hook.Release()
			c, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: "sk_k"})
			if err != nil {
				t.Fatal(err)
			}
			if code := c.Closed(); code != 1013 {
				t.Fatalf("closed with %d, want 1013 (%v)", code, c.Err())
			}
			resp, err := http.Get(n.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/readyz %d while the webhook fails, want 200", resp.StatusCode)
			}
		})
	}
	hook.Grant("sk_k", "u", time.Hour, "p")
	wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: "sk_k"})
	for outcome, want := range map[string]float64{"status": 1, "malformed": 1, "timeout": 1, "ok": 1, "refused": 0} {
		if got := testutil.ToFloat64(n.Metrics.WebhookCalls.WithLabelValues(outcome)); got != want {
			t.Errorf("webhook calls with outcome %s: %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.ToFloat64(n.Metrics.AuthFailures.WithLabelValues("unavailable")); got != 3 {
		t.Errorf("auth failures unavailable: %v, want 3", got)
	}
	if got := testutil.CollectAndCount(n.Metrics.WebhookLatency); got != 1 {
		t.Errorf("latency histogram series %d", got)
	}
}

// TestWebhookBurst: a thousand connections with one credential (a thousand
// tabs reloading) make one webhook call.
func TestWebhookBurst(t *testing.T) {
	const n = 1000
	hook := wstest.StartWebhook(t)
	hook.Grant("sk_tabs", "u", time.Hour, "p")
	hook.Hold()
	node := webhookNode(t, hook, 30*time.Second)

	conns := make([]*websocket.Conn, n)
	t.Cleanup(func() {
		for _, ws := range conns {
			if ws != nil {
				ws.CloseNow()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hdr := http.Header{"Authorization": {"Bearer sk_tabs"}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ws, _, err := websocket.Dial(ctx, node.WSURL(), &websocket.DialOptions{HTTPHeader: hdr, Subprotocols: []string{ws.Subprotocol}})
			if err != nil {
				errs <- err
				return
			}
			conns[i] = ws
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	hook.Release()
	for i, ws := range conns {
		_, data, err := ws.Read(ctx)
		var f wstest.Frame
		if err != nil || json.Unmarshal(data, &f) != nil || f.Op != "ready" || f.User != "u" {
			t.Fatalf("connection %d: %s, %v", i, data, err)
		}
	}
	if got := hook.Calls("sk_tabs"); got != 1 {
		t.Fatalf("%d webhook calls for %d connections, want 1", got, n)
	}
}

// TestWebhookRenewedAtExp: at exp a webhook credential is asked for again;
// renewed, the connection carries on (and is asked again at the new exp);
// refused, it closes with 4009; webhook down, with 1013.
func TestWebhookRenewedAtExp(t *testing.T) {
	hook := wstest.StartWebhook(t)
	n := webhookNode(t, hook, 300*time.Millisecond)
	// exp is in whole seconds: two seconds from now is one to two away.
	for _, k := range []string{"sk_renewed", "sk_revoked", "sk_down"} {
		hook.Grant(k, "u", 2*time.Second, "p")
	}
	renewed := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: "sk_renewed"})
	revoked := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: "sk_revoked"})
	down := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: "sk_down"})
	renewed.Subscribe("1", "p", "c", "")
	hook.Grant("sk_renewed", "u", 3*time.Second, "p") // a later exp than the first
	hook.Answer("sk_revoked", wstest.WebhookAnswer{Status: http.StatusForbidden})
	hook.Answer("sk_down", wstest.WebhookAnswer{Status: http.StatusBadGateway})

	if code := revoked.Closed(); code != 4009 {
		t.Fatalf("refused at exp: closed with %d, want 4009", code)
	}
	if code := down.Closed(); code != 1013 {
		t.Fatalf("webhook down at exp: closed with %d, want 1013", code)
	}
	// The renewal's own exp is reached in turn: a third call shows the
	// first renewal was taken and its timer set.
	eventually(t, "the first renewal", func() bool { return hook.Calls("sk_renewed") >= 2 })
	hook.Grant("sk_renewed", "u", time.Hour, "p")
	eventually(t, "the second renewal", func() bool { return hook.Calls("sk_renewed") >= 3 })
	n.Publish(t, wstest.Doc("p", "c", 1))
	renewed.Events(1)
	renewed.Send(`{"op":"ping","id":"x"}`)
	renewed.Expect("pong")
	if got := hook.Calls("sk_revoked"); got != 2 {
		t.Fatalf("refused credential asked %d times, want 2 (connect and exp)", got)
	}
	if !slices.Equal(slices.Compact(hook.Transports()), []string{"ws"}) {
		t.Fatalf("transports %v", hook.Transports())
	}
}
