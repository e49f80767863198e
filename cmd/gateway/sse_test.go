package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testlog"
)

// TestDevelopmentSSE runs the `curl -N` line a development node prints:
// the stream subscribes, carries a published event, and ends when the node
// drains. The token, sent as ?token= the way an EventSource sends it, is
// never logged.
func TestDevelopmentSSE(t *testing.T) {
	var stdout, stderr testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"SYNCGATE_ADDR": "127.0.0.1:0", "SYNCGATE_LOG_LEVEL": "debug"}), &stdout, &stderr)
	}()
	curl := regexp.MustCompile(`curl -N '(\S+)' -H 'Authorization: Bearer (\S+)'`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no curl -N line printed: %q", stdout.String())
		}
		m = curl.FindStringSubmatch(stdout.String())
	}
	streamURL, token := m[1], m[2]
	key := regexp.MustCompile(`Bearer (dev-[0-9a-f]+)'`).FindStringSubmatch(stdout.String())[1]

	resp, err := http.Get(streamURL + "&token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s: %d %s", streamURL, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	await := func(prefix string) string {
		t.Helper()
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), prefix) {
				return lines.Text()
			}
		}
		t.Fatalf("stream ended before a line %q: %v", prefix, lines.Err())
		return ""
	}
	await("event: subscribed")
	body := `{"type":"document:created","project":"demo","collection":"todos","documentId":"t1","document":{"title":"secret-body-text"}}`
	req, _ := http.NewRequest("POST", strings.Replace(streamURL, "/v1/sse?sub=demo/todos", "/v1/publish", 1), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	pr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, pr.Body)
	pr.Body.Close()
	await("event: events")
	if data := await("data: "); !strings.Contains(data, `"documentId":"t1"`) {
		t.Fatalf("events data %s", data)
	}

	cancel() // drain: the stream ends
	for lines.Scan() {
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if logs := stderr.String(); strings.Contains(logs, token) || strings.Contains(logs, "secret-body-text") {
		t.Errorf("the log contains the token or the document: %s", logs)
	}
}

func TestSSEKeepAliveConfig(t *testing.T) {
	for _, v := range []string{"soon", "0s", "-1s"} {
		err := run(context.Background(), nil, env(map[string]string{"SYNCGATE_SSE_KEEPALIVE": v}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `SYNCGATE_SSE_KEEPALIVE="`+v+`"`) {
			t.Errorf("SYNCGATE_SSE_KEEPALIVE=%s: %v", v, err)
		}
	}
	c, err := loadConfig(nil, env(map[string]string{"SYNCGATE_SSE_KEEPALIVE": "5s"}))
	if err != nil || c.SSEKeepAlive != 5*time.Second {
		t.Errorf("SYNCGATE_SSE_KEEPALIVE=5s: %v, %v", c, err)
	}
}
