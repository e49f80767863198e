package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/syncgate/syncgate/internal/wstest"
)

func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wstest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetricsMoveWithTraffic drives connections, subscriptions, publishes,
// deliveries and auth failures and checks every metric follows, then lints
// the exposition with promlint and checks no label carries a project, user
// or collection.
func TestMetricsMoveWithTraffic(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "user-7", time.Hour, []string{"proj-secret"}, nil, nil)})
	if got := n.Metric(t, "syncgate_connections"); got != 1 {
		t.Fatalf("connections %v, want 1", got)
	}
	c.Subscribe("s", "proj-secret", "coll-secret", "")
	if got := n.Metric(t, "syncgate_subscriptions"); got != 1 {
		t.Fatalf("subscriptions %v, want 1", got)
	}
	n.Publish(t, wstest.Doc("proj-secret", "coll-secret", 1), wstest.Doc("proj-secret", "coll-secret", 2))
	c.Events(2)
	await(t, "delivered 2", func() bool { return n.Metric(t, "syncgate_events_delivered_total") == 2 })
	if got := n.Metric(t, "syncgate_events_published_total"); got != 2 {
		t.Fatalf("published %v, want 2", got)
	}
	if got := n.Metric(t, "syncgate_delivery_latency_seconds"); got != 2 {
		t.Fatalf("latency observations %v, want 2", got)
	}
	if got := n.Metric(t, "syncgate_client_messages_total", "op", "subscribe"); got != 1 {
		t.Fatalf("subscribe messages %v, want 1", got)
	}
	bad, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: "x.y.z"})
	if err != nil {
		t.Fatal(err)
	}
	bad.Closed()
	await(t, "auth failure", func() bool { return n.Metric(t, "syncgate_auth_failures_total", "reason", "malformed") == 1 })
	n.PublishRaw(t, "wrong-key", []byte(`{}`))
	if got := n.Metric(t, "syncgate_auth_failures_total", "reason", "publish_key"); got != 1 {
		t.Fatalf("publish key failures %v, want 1", got)
	}
	c.Send(`{"op":"unsubscribe","id":"u","project":"proj-secret","collection":"coll-secret"}`)
	c.Expect("unsubscribed")
	if got := n.Metric(t, "syncgate_subscriptions"); got != 0 {
		t.Fatalf("subscriptions %v after unsubscribe, want 0", got)
	}

	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, name := range []string{
		"syncgate_connections", "syncgate_subscriptions", "syncgate_events_published_total",
		"syncgate_events_delivered_total", "syncgate_events_dropped_total", "syncgate_delivery_latency_seconds_bucket",
		"syncgate_slow_consumer_disconnects_total", "syncgate_auth_failures_total", "syncgate_backplane_up",
		"syncgate_backplane_reconnects_total", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(text, "\n"+name) && !strings.HasPrefix(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, secret := range []string{"proj-secret", "coll-secret", "user-7"} {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics exposes %q as a label value", secret)
		}
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "syncgate_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}
