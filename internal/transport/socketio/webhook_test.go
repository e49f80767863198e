package socketio_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/wstest"
)

// webhookNode starts a node whose Socket.IO endpoint authenticates through
// hook only.
func webhookNode(t *testing.T, hook *wstest.Webhook) *node {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{Webhook: auth.WebhookConfig{URL: hook.URL, Timeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return startNode(t, nil, func(c *nodeConfig) { c.Verifier = v })
}

func TestWebhookCredential(t *testing.T) {
	hook := wstest.StartWebhook(t)
	hook.Grant("sk_alice", "alice", time.Hour, "p1")
	n := webhookNode(t, hook)

	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": "sk_alice"})
	c.emit(false, "join-project", "p1")
	c.expectEvent("joined-project")
	dial(t, n, dialOpts{Header: http.Header{"Authorization": {"Bearer sk_alice"}}}).mustConnect(nil)
	if hook.Calls("sk_alice") != 1 || !slices.Equal(hook.Transports(), []string{"socketio"}) {
		t.Fatalf("%d calls with transports %v, want 1 socketio call", hook.Calls("sk_alice"), hook.Transports())
	}

	// A refusal is CONNECT_ERROR, as a Socket.IO middleware's would be.
	f := dial(t, n, dialOpts{}).connect(map[string]string{"token": "sk_unknown"})
	var a connectAnswer
	if f.SIO != '4' || json.Unmarshal(f.Data, &a) != nil || a.Data.Code != "unauthorized" {
		t.Fatalf("refused credential: %q, want CONNECT_ERROR unauthorized", f.Raw)
	}
}

// TestWebhookUnavailable: a failing or silent webhook closes the connection
// with 1013, so socket.io-client reconnects instead of giving up as it
// would on CONNECT_ERROR.
func TestWebhookUnavailable(t *testing.T) {
	hook := wstest.StartWebhook(t)
	n := webhookNode(t, hook)
	hook.Answer("sk_k", wstest.WebhookAnswer{Status: http.StatusServiceUnavailable})
	c := dial(t, n, dialOpts{})
	c.send(`40{"token":"sk_k"}`)
	if code := c.closed(); code != 1013 {
		t.Fatalf("webhook 503: closed with %d, want 1013", code)
	}
	hook.Grant("sk_k", "u", time.Hour, "p1")
	hook.Hold()
	c = dial(t, n, dialOpts{})
	c.send(`40{"token":"sk_k"}`)
	if code := c.closed(); code != 1013 {
		t.Fatalf("silent webhook: closed with %d, want 1013", code)
	}
	hook.Release()
	dial(t, n, dialOpts{}).mustConnect(map[string]string{"token": "sk_k"})
}

// TestWebhookRenewedAtExp: at exp the credential is asked for again; a
// renewal keeps the socket, a refusal closes it with 4009.
func TestWebhookRenewedAtExp(t *testing.T) {
	hook := wstest.StartWebhook(t)
	n := webhookNode(t, hook)
	hook.Grant("sk_renewed", "u", 2*time.Second, "p1")
	hook.Grant("sk_revoked", "u", 2*time.Second, "p1")
	renewed := dial(t, n, dialOpts{})
	renewed.mustConnect(map[string]string{"token": "sk_renewed"})
	revoked := dial(t, n, dialOpts{})
	revoked.mustConnect(map[string]string{"token": "sk_revoked"})
	hook.Grant("sk_renewed", "u", time.Hour, "p1")
	hook.Answer("sk_revoked", wstest.WebhookAnswer{Status: http.StatusUnauthorized})

	if code := revoked.closed(); code != 4009 {
		t.Fatalf("refused at exp: closed with %d, want 4009", code)
	}
	eventually(t, "the renewal", func() bool { return hook.Calls("sk_renewed") == 2 })
	renewed.emit(false, "join-project", "p1")
	renewed.expectEvent("joined-project")
	n.Publish(t, wstest.Doc("p1", "c", 1))
	renewed.expectEvent("project-event")
}
