package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/testlog"
	"github.com/syncgate/syncgate/internal/wstest"
)

// startGateway runs the gateway with getenv until the test ends and returns
// its address, read from the log.
func startGateway(t *testing.T, getenv func(string) string) (addr string, logs *testlog.Buffer) {
	t.Helper()
	var stdout, stderr testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	re := regexp.MustCompile(`serving.* addr=(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return m[1], &stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGatewayWebhook runs the gateway with SYNCGATE_AUTH_* only (no JWT key,
// so not a development node) against a webhook on loopback.
func TestGatewayWebhook(t *testing.T) {
	hook := wstest.StartWebhook(t)
	const cred = "sk_live_gateway_credential"
	hook.Answer(cred, wstest.WebhookAnswer{Status: http.StatusInternalServerError})
	addr, logs := startGateway(t, env(map[string]string{
		"SYNCGATE_ADDR": "127.0.0.1:0", "SYNCGATE_LOG_LEVEL": "debug", "SYNCGATE_AUTH_URL": hook.URL,
		"SYNCGATE_AUTH_KEY": "hook-key", "SYNCGATE_AUTH_TIMEOUT": "300ms", "SYNCGATE_PUBLISH_KEYS": "pk",
	}))
	wsURL := "ws://" + addr + "/v1/ws"

	// The webhook fails: 1013, and the node stays ready.
	c, err := wstest.TryDial(t, wsURL, wstest.DialOptions{Token: cred})
	if err != nil {
		t.Fatal(err)
	}
	if code := c.Closed(); code != 1013 {
		t.Fatalf("failing webhook: closed with %d, want 1013", code)
	}
	hook.Hold()
	c, err = wstest.TryDial(t, wsURL, wstest.DialOptions{Token: cred, FirstMessage: true})
	if err != nil {
		t.Fatal(err)
	}
	if code := c.Closed(); code != 1013 {
		t.Fatalf("slow webhook: closed with %d, want 1013", code)
	}
	hook.Release()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz %d after webhook failures, want 200", resp.StatusCode)
	}

	// It answers: the credential connects, on both transports.
	hook.Grant(cred, "u1", time.Hour, "p1")
	hook.Grant("sk_sio", "u2", time.Hour, "p1") // another credential: cred's answer is cached
	if f := wstest.Dial(t, wsURL+"?token="+cred, wstest.DialOptions{}).Expect("ready"); f.User != "u1" {
		t.Fatalf("ready %s", f.Raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sio, _, err := websocket.Dial(ctx, "ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sio.CloseNow()
	if _, open, err := sio.Read(ctx); err != nil || open[0] != '0' {
		t.Fatalf("engine.io open %q, %v", open, err)
	}
	if err := sio.Write(ctx, websocket.MessageText, []byte(`40{"token":"sk_sio"}`)); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := sio.Read(ctx); err != nil || !strings.HasPrefix(string(ack), `40{"sid"`) {
		t.Fatalf("socket.io CONNECT answer %q, %v", ack, err)
	}
	if got := strings.Join(hook.Transports(), ","); got != "ws,ws,ws,socketio" {
		t.Fatalf("transports %s", got)
	}

	// The metrics count the calls by outcome.
	metrics, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	for _, line := range []string{
		`syncgate_auth_webhook_calls_total{outcome="status"} 1`,
		`syncgate_auth_webhook_calls_total{outcome="timeout"} 1`,
		`syncgate_auth_webhook_calls_total{outcome="ok"} 2`,
		`syncgate_auth_failures_total{reason="unavailable"} 2`,
		`syncgate_auth_webhook_duration_seconds_count 4`,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	if strings.Contains(logs.String(), cred) {
		t.Errorf("the log contains the credential")
	}
	if !strings.Contains(logs.String(), "authentication webhook failed") {
		t.Errorf("the webhook failure was not logged")
	}
}

func TestWebhookConfig(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string // "" for valid
	}{
		{map[string]string{"SYNCGATE_AUTH_URL": "http://127.0.0.1:1/auth"}, ""},
		{map[string]string{"SYNCGATE_AUTH_URL": "http://127.0.0.1:1/auth", "SYNCGATE_AUTH_TIMEOUT": "500ms", "SYNCGATE_AUTH_CACHE_TTL": "5m"}, ""},
		{map[string]string{"SYNCGATE_AUTH_URL": "http://x", "SYNCGATE_AUTH_TIMEOUT": "-1s"}, `SYNCGATE_AUTH_TIMEOUT="-1s": must not be negative`},
		{map[string]string{"SYNCGATE_AUTH_URL": "http://x", "SYNCGATE_AUTH_CACHE_TTL": "-5m"}, `SYNCGATE_AUTH_CACHE_TTL="-5m": must not be negative`},
		{map[string]string{"SYNCGATE_AUTH_URL": "http://x", "SYNCGATE_AUTH_TIMEOUT": "0s"}, `SYNCGATE_AUTH_TIMEOUT="0s": must be more than 0`},
		{map[string]string{"SYNCGATE_AUTH_URL": "http://x", "SYNCGATE_AUTH_CACHE_TTL": "soon"}, `SYNCGATE_AUTH_CACHE_TTL="soon"`},
		{map[string]string{"SYNCGATE_AUTH_URL": "auth.example.com"}, `SYNCGATE_AUTH_URL="auth.example.com"`},
		{map[string]string{"SYNCGATE_AUTH_KEY": "k"}, "SYNCGATE_AUTH_KEY is set but SYNCGATE_AUTH_URL is not"},
	}
	for _, tt := range tests {
		c, err := loadConfig(nil, env(tt.env))
		if tt.want == "" {
			if err != nil || c.Dev || c.JWTSecret != "" {
				t.Errorf("env %v: %+v, %v; want a webhook-only, non-development config", tt.env, c, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: error %v, want one containing %q", tt.env, err, tt.want)
		}
	}
	c, err := loadConfig(nil, env(map[string]string{"SYNCGATE_AUTH_URL": "http://x"}))
	if err != nil || c.AuthTimeout != 2*time.Second || c.AuthCacheTTL != time.Minute {
		t.Fatalf("defaults: timeout %s, cache TTL %s, %v; want 2s and 1m", c.AuthTimeout, c.AuthCacheTTL, err)
	}
}
