package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cli runs run() in process and returns the exit status, stdout and stderr.
func cli(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func startNode(t *testing.T) (*wstest.Node, *wstest.Client) {
	t.Helper()
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "u1", time.Hour, []string{"p1"}, nil, nil)})
	c.Subscribe("s1", "p1", "rows", "")
	return n, c
}

func TestUsage(t *testing.T) {
	env := map[string]string{"SYNCGATE_URL": "http://127.0.0.1:1", "SYNCGATE_PUBLISH_KEY": "k"}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no destination", nil, nil, "no destination"},
		{"no key", map[string]string{"SYNCGATE_URL": "http://x"}, nil, "--key"},
		{"both transports", env, []string{"--url", "http://x", "--redis", "redis://x"}, "choose one"},
		{"bad url", env, []string{"--url", "x:80"}, "not an http(s) URL"},
		{"unknown flag", env, []string{"--nope"}, "flag provided but not defined"},
		{"argument", env, []string{"events.jsonl"}, "unexpected argument"},
		{"document without type", env, []string{"--document", "{}"}, "--document needs --type"},
		{"type and file", env, []string{"--type", "insert", "--file", "x"}, "not both"},
		{"batch", env, []string{"--batch", "1001"}, "--batch 1001"},
		{"negative linger", env, []string{"--linger", "-1s"}, "--linger -1s: must not be negative"},
		{"negative progress", env, []string{"--progress", "-2s"}, "--progress -2s"},
		{"zero timeout", env, []string{"--timeout", "0s"}, "--timeout 0s: must be more than 0"},
		{"negative retries", env, []string{"--retries", "-3"}, "--retries -3: must not be negative"},
		{"missing file", env, []string{"--file", "/nonexistent/x.jsonl"}, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(t, tc.env, "", tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
	code, _, stderr := cli(t, nil, "", "--help")
	if code != 0 || !strings.Contains(stderr, "Exit status:") || !strings.Contains(stderr, "--project P --collection C --type T") || !strings.Contains(stderr, "-linger") {
		t.Errorf("--help: exit %d\n%s", code, stderr)
	}
}

// TestKeyFromGatewayVariable: the CLI reads the gateway's
// SYNCGATE_PUBLISH_KEYS (its first key) when SYNCGATE_PUBLISH_KEY is unset,
// so one environment serves both commands.
func TestKeyFromGatewayVariable(t *testing.T) {
	n, c := startNode(t)
	tests := []struct {
		name string
		env  map[string]string
		code int
	}{
		{"first of the plural", map[string]string{"SYNCGATE_URL": n.URL, "SYNCGATE_PUBLISH_KEYS": " ," + wstest.Key + ",other"}, 0},
		{"singular wins", map[string]string{"SYNCGATE_URL": n.URL, "SYNCGATE_PUBLISH_KEY": wstest.Key, "SYNCGATE_PUBLISH_KEYS": "wrong"}, 0},
		{"plural, wrong first key", map[string]string{"SYNCGATE_URL": n.URL, "SYNCGATE_PUBLISH_KEYS": "wrong," + wstest.Key}, -1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cli(t, tt.env, "", "--project", "p1", "--collection", "rows", "--type", "insert", "--id", fmt.Sprint("k", i))
			if tt.code == 0 && code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tt.code != 0 && (code == 0 || !strings.Contains(stderr, "401")) {
				t.Fatalf("exit %d, want a refusal (401): %s", code, stderr)
			}
			if tt.code == 0 {
				c.Expect("events")
			}
		})
	}
}

func TestOneEventFromFlags(t *testing.T) {
	n, c := startNode(t)
	doc := filepath.Join(t.TempDir(), "doc.json")
	if err := os.WriteFile(doc, []byte("{\"title\": \"Launch\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SYNCGATE_URL": n.URL, "SYNCGATE_PUBLISH_KEY": wstest.Key}
	code, stdout, stderr := cli(t, env, "", "--project", "p1", "--collection", "rows", "--type", "document:updated",
		"--id", "e1", "--document", "@"+doc, "--old-document", `{"title":"Draft"}`, "--actor", "user-42")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ev := c.Events(1)[0]
	if strings.TrimSpace(stdout) != ev.Offset || ev.Type != "document:updated" || ev.DocumentID != "e1" ||
		string(ev.Document) != `{"title":"Launch"}` || string(ev.OldDocument) != `{"title":"Draft"}` || ev.Actor != "user-42" {
		t.Errorf("stdout %q, delivered %+v", stdout, ev)
	}

	// An invalid event is refused before sending, with the gateway's words.
	code, _, stderr = cli(t, env, "", "--project", "p1", "--collection", "rows", "--type", "Updated")
	if code != exitInvalid || !strings.Contains(stderr, `type "Updated" must match [a-z_:.]{1,64}`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli(t, env, "", "--project", "p1", "--collection", "rows", "--type", "insert", "--document", "{oops")
	if code != exitInvalid || !strings.Contains(stderr, "document is not valid JSON") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestExitStatuses(t *testing.T) {
	n, c := startNode(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	ok := `{"type":"insert","collection":"rows","documentId":"1"}` + "\n"

	code, _, stderr := cli(t, nil, ok, "--url", n.URL, "--key", "wrong", "--project", "p1")
	if code != exitRefused || !strings.Contains(stderr, "401 unauthorized") || !strings.Contains(stderr, "lines 1-1") {
		t.Errorf("wrong key: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli(t, nil, ok, "--url", dead, "--key", "k", "--project", "p1", "--retries", "1")
	if code != exitUnavailable || !strings.Contains(stderr, "trying again is safe") {
		t.Errorf("unreachable: exit %d, stderr %q", code, stderr)
	}

	// Line 3 is invalid: lines 1 and 2 are published, nothing after.
	in := ok + "\n" + `{"type":"insert","collection":"rows","docId":"x"}` + "\n" + ok
	code, _, stderr = cli(t, nil, in, "--url", n.URL, "--key", wstest.Key, "--project", "p1", "--quiet")
	if code != exitInvalid || !strings.Contains(stderr, `line 3: invalid event: unknown field "docId"`) ||
		!strings.Contains(stderr, "1 event before it published") {
		t.Errorf("invalid line: exit %d, stderr %q", code, stderr)
	}
	if evs := c.Events(1); evs[0].DocumentID != "1" {
		t.Errorf("delivered %+v", evs[0])
	}
	long := strings.Repeat(" ", maxLine+1) + "\n"
	code, _, stderr = cli(t, nil, ok+long, "--url", n.URL, "--key", wstest.Key, "--project", "p1", "--quiet")
	if code != exitInvalid || !strings.Contains(stderr, "line 2: longer than 1048576 bytes") {
		t.Errorf("long line: exit %d, stderr %q", code, stderr)
	}
	c.Events(1)
}

// The built binary streams 10,000 JSON lines from a pipe; a subscribed
// client receives all of them, in order.
func TestBinaryPipesTenThousandLines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	n, c := startNode(t)
	bin := filepath.Join(t.TempDir(), "publisher")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const total = 10000
	var in bytes.Buffer
	for i := range total {
		fmt.Fprintf(&in, `{"type":"insert","collection":"rows","documentId":"r%d","document":{"seq":%d}}`+"\n", i, i)
	}
	cmd := exec.Command(bin, "--project", "p1", "--offsets", "--progress", "1ms")
	cmd.Env = append(os.Environ(), "SYNCGATE_URL="+n.URL, "SYNCGATE_PUBLISH_KEY="+wstest.Key)
	stdinPipe, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = in.WriteTo(stdinPipe)
		stdinPipe.Close()
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("publisher: %v\n%s", err, stderr.String())
	}
	got := c.Events(total)
	offsets := strings.Fields(stdout.String())
	if len(offsets) != total {
		t.Fatalf("%d offsets printed, want %d", len(offsets), total)
	}
	for i, ev := range got {
		var d struct{ Seq int }
		if err := json.Unmarshal(ev.Document, &d); err != nil || d.Seq != i || ev.Offset != offsets[i] {
			t.Fatalf("event %d: %s offset %s (printed %s)", i, ev.Document, ev.Offset, offsets[i])
		}
	}
	if !strings.Contains(stderr.String(), "published 10000 events in") {
		t.Errorf("no summary on stderr: %q", stderr.String())
	}
	if !strings.Contains(stderr.String(), "events published, ") {
		t.Errorf("no progress line on stderr: %q", stderr.String())
	}
}

// The same lines over --redis reach a subscriber of a gateway on that Redis.
func TestRedisTransport(t *testing.T) {
	srv := redistest.Start(t)
	bp, err := backplane.NewRedis(backplane.RedisConfig{URL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "u1", time.Hour, []string{"p1"}, nil, nil)})
	c.Subscribe("s1", "p1", "rows", "")
	var in strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&in, `{"type":"insert","collection":"rows","documentId":"r%d"}`+"\n", i)
	}
	code, stdout, stderr := cli(t, map[string]string{"SYNCGATE_REDIS_URL": srv.URL()}, in.String(), "--project", "p1", "--offsets", "--batch", "1000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	offsets := strings.Fields(stdout)
	for i, ev := range c.Events(1500) {
		if ev.DocumentID != fmt.Sprintf("r%d", i) || ev.Offset != offsets[i] {
			t.Fatalf("event %d: %s at %s (printed %s)", i, ev.DocumentID, ev.Offset, offsets[i])
		}
	}
	srv.Kill()
	code, _, stderr = cli(t, nil, in.String(), "--redis", srv.URL(), "--project", "p1", "--retries", "1")
	if code != exitUnavailable || !strings.Contains(stderr, "lines 1-") {
		t.Errorf("Redis down: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli(t, nil, "", "--redis", "http://x")
	if code != exitUsage || !strings.Contains(stderr, "scheme") {
		t.Errorf("bad Redis URL: exit %d, stderr %q", code, stderr)
	}
}
