package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/internal/testlog"
	"github.com/syncgate/syncgate/internal/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestDevelopmentDefaults starts the gateway as `go run ./cmd/gateway`
// would (only the address moved to a free port), uses the printed token and
// publish key, and checks the logs never carry them.
func TestDevelopmentDefaults(t *testing.T) {
	var stdout, stderr testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"SYNCGATE_ADDR": "127.0.0.1:0", "SYNCGATE_LOG_LEVEL": "debug"}), &stdout, &stderr)
	}()
	var addr, token, key string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" || key == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no development help printed: %q", stdout.String())
		}
		out := stdout.String()
		if m := regexp.MustCompile(`development node on http://(\S+) `).FindStringSubmatch(out); m != nil {
			addr = m[1]
		}
		if m := regexp.MustCompile(`Bearer (dev-[0-9a-f]+)'`).FindStringSubmatch(out); m != nil {
			key = m[1]
		}
		if m := regexp.MustCompile(`#token=(\S+)`).FindStringSubmatch(out); m != nil {
			token = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The token connects as a query parameter too, which must not be logged.
	c := wstest.Dial(t, "ws://"+addr+"/v1/ws?token="+token, wstest.DialOptions{})
	c.Expect("ready")

	// The printed `gateway token` command mints a token this node accepts.
	m := regexp.MustCompile(`SYNCGATE_JWT_SECRET=(\S+) \\\n\s+go run ./cmd/gateway (token .*)\n`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no gateway token command in the banner: %s", stdout.String())
	}
	var minted bytes.Buffer
	if err := run(context.Background(), strings.Fields(m[2]), env(map[string]string{"SYNCGATE_JWT_SECRET": m[1]}), &minted, io.Discard); err != nil {
		t.Fatalf("%s: %v", m[2], err)
	}
	wstest.Dial(t, "ws://"+addr+"/v1/ws", wstest.DialOptions{Token: strings.TrimSpace(minted.String())}) // waits for ready
	c.Subscribe("1", "demo", "todos", "")
	body := `{"type":"document:created","project":"demo","collection":"todos","documentId":"t1","document":{"title":"secret-body-text"}}`
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("printed publish command answered %d", resp.StatusCode)
	}
	if got := c.Events(1); got[0].DocumentID != "t1" {
		t.Fatalf("got %+v", got)
	}
	// The demo page is served on a development node.
	page, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != 200 {
		t.Fatalf("demo page: %d", page.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if code := c.Closed(); code != 1012 {
		t.Fatalf("client closed with %d on shutdown, want 1012", code)
	}
	logs := stderr.String()
	for name, secret := range map[string]string{"token": token, "publish key": key, "document body": "secret-body-text"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
	if !strings.Contains(logs, "grace=1s") {
		t.Errorf("a development node drains with a short grace (1s): %s", logs)
	}
	if !strings.Contains(logs, "connection ready") {
		t.Errorf("debug log has no connection line: %s", logs)
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"67108864", 64 << 20, true}, {"64MiB", 64 << 20, true}, {"2GiB", 2 << 30, true}, {"512KiB", 512 << 10, true},
		{"64MB", 0, false}, {"-1", 0, false}, {"MiB", 0, false}, {"99999999999GiB", 0, false},
	} {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"SYNCGATE_HISTORY_SIZE": "many"}, nil, `SYNCGATE_HISTORY_SIZE="many"`},
		{map[string]string{"SYNCGATE_HISTORY_TTL": "1 day"}, nil, `SYNCGATE_HISTORY_TTL="1 day"`},
		{map[string]string{"SYNCGATE_SHUTDOWN_GRACE": "-1s"}, nil, "SYNCGATE_SHUTDOWN_GRACE"},
		{map[string]string{"SYNCGATE_LOG_FORMAT": "xml"}, nil, `SYNCGATE_LOG_FORMAT="xml"`},
		{map[string]string{"SYNCGATE_LOG_LEVEL": "loud"}, nil, "SYNCGATE_LOG_LEVEL"},
		{map[string]string{"SYNCGATE_JWT_SECRET": "short"}, nil, "SYNCGATE_JWT_SECRET/SYNCGATE_JWKS_URL: auth: JWT secret is 5 bytes"},
		{map[string]string{"SYNCGATE_ADDR": "not-an-address"}, nil, "SYNCGATE_ADDR"},
		{nil, []string{"extra"}, "unexpected arguments"},
		{map[string]string{"SYNCGATE_HISTORY_READ_BUDGET": "lots"}, nil, `SYNCGATE_HISTORY_READ_BUDGET="lots"`},
		{map[string]string{"SYNCGATE_HISTORY_READ_BUDGET": "64KiB"}, nil, `SYNCGATE_HISTORY_READ_BUDGET="64KiB": want a size of at least 1MiB`},
	}
	for _, tt := range tests {
		err := run(context.Background(), tt.args, env(tt.env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v args %v: error %v, want one containing %q", tt.env, tt.args, err, tt.want)
		}
	}
}
