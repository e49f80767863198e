package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testlog"
)

func TestOriginAllowed(t *testing.T) {
	tests := []struct {
		origin, host string
		patterns     []string
		want         bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", nil, true},
		{"http://localhost:5173", "127.0.0.1:8080", nil, false},
		{"http://localhost:5173", "127.0.0.1:8080", []string{"localhost:5173"}, true},
		{"http://LOCALHOST:5173", "127.0.0.1:8080", []string{"localhost:5173"}, true},
		{"http://localhost:5174", "127.0.0.1:8080", []string{"localhost:5173"}, false},
		{"http://localhost:5173", "127.0.0.1:8080", []string{"localhost"}, false}, // the port is part of the host
		{"https://app.example.com", "gw", []string{"*.example.com"}, true},
		{"https://example.com", "gw", []string{"*.example.com"}, false},
		{"https://app.example.com", "gw", []string{"http://app.example.com"}, false},
		{"https://app.example.com", "gw", []string{"https://app.example.com"}, true},
		{"null", "gw", []string{"*"}, true}, // as the library: "*" matches the empty host
		{"%%", "gw", []string{"*"}, false},
	}
	for _, tt := range tests {
		if got := originAllowed(tt.origin, tt.host, tt.patterns); got != tt.want {
			t.Errorf("originAllowed(%q, %q, %q) = %v, want %v", tt.origin, tt.host, tt.patterns, got, tt.want)
		}
	}
}

// upgrade sends a WebSocket upgrade request with origin and returns the status.
func upgrade(t *testing.T, url, origin string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "syncgate.v1")
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRefusedOriginLoggedOnce runs a development node with
// SYNCGATE_ALLOWED_ORIGINS and checks that a refused origin is logged once,
// with the patterns, and an allowed one not at all.
func TestRefusedOriginLoggedOnce(t *testing.T) {
	var stdout, stderr testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"SYNCGATE_ADDR": "127.0.0.1:0", "SYNCGATE_ALLOWED_ORIGINS": "localhost:5173, *.example.com"}), &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no development help printed: %q", stdout.String())
		}
		if m := regexp.MustCompile(`development node on http://(\S+) `).FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, path := range []string{"/v1/ws", "/socket.io/?EIO=4&transport=websocket", "/v1/ws"} {
		if code := upgrade(t, "http://"+addr+path, "http://localhost:3000"); code != http.StatusForbidden {
			t.Fatalf("refused origin on %s: status %d, want 403", path, code)
		}
	}
	if code := upgrade(t, "http://"+addr+"/v1/ws", "http://localhost:5173"); code != http.StatusSwitchingProtocols {
		t.Fatalf("allowed origin: status %d, want 101", code)
	}
	logs := stderr.String()
	lines := regexp.MustCompile(`(?m)^.*origin refused.*$`).FindAllString(logs, -1)
	if len(lines) != 1 {
		t.Fatalf("want one log line for three refusals of one origin, got %d:\n%s", len(lines), logs)
	}
	for _, want := range []string{`origin=http://localhost:3000`, `allowed=localhost:5173,*.example.com`, "localhost:5173"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line lacks %s: %s", want, lines[0])
		}
	}
}

func TestOriginLogIsBounded(t *testing.T) {
	var buf bytes.Buffer
	o := newOriginLog(nil, slog.New(slog.NewTextHandler(&buf, nil)))
	h := o.wrap(http.NotFoundHandler())
	for i := range maxLoggedOrigins + 10 {
		r := httptest.NewRequest("GET", "http://gw/v1/ws", nil)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Origin", "http://o"+strconv.Itoa(i)+".test")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if n := len(o.seen); n != maxLoggedOrigins {
		t.Fatalf("remembered %d origins, want the bound %d", n, maxLoggedOrigins)
	}
	if got := strings.Count(buf.String(), "no longer logging"); got != 1 {
		t.Fatalf("cap announced %d times, want once", got)
	}
}
