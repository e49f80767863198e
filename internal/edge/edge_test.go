package edge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/internal/edge"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	tests := []struct {
		c    edge.Config
		want string
	}{
		{edge.Config{}, ""},
		{edge.Config{HeaderTimeout: -time.Second}, "HeaderTimeout is -1s"},
		{edge.Config{BodyTimeout: -1}, "BodyTimeout is -1ns"},
		{edge.Config{IdleTimeout: -time.Minute}, "IdleTimeout is -1m0s"},
		{edge.Config{MaxUnauthenticated: -2}, "MaxUnauthenticated is -2"},
		{edge.Config{WriteTimeout: 5 * time.Second}, "WriteTimeout 5s must exceed BodyTimeout 30s"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tt.c, err, tt.want)
		}
	}
}

// TestListenerCounts serves a real listener: each accepted connection is
// pending until a handler calls Authenticated (directly, or on a Detach'ed
// context) or it closes; at the limit a new connection gets a 503.
func TestListenerCounts(t *testing.T) {
	cfg := edge.Config{MaxUnauthenticated: 2}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := cfg.NewListener(ln)
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) { edge.Authenticated(r.Context()) })
	mux.HandleFunc("/detached", func(w http.ResponseWriter, r *http.Request) { edge.Authenticated(edge.Detach(r.Context())) })
	mux.HandleFunc("/anon", func(w http.ResponseWriter, r *http.Request) {})
	srv := cfg.Server(mux, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(gate) }()
	defer func() {
		_ = srv.Close()
		<-done
	}()
	await := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for gate.Pending() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d pending, want %d", what, gate.Pending(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(path string) {
		t.Helper()
		resp, err := client.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/anon") // a keep-alive connection that stays pending
	await("after an anonymous request", 1)
	get("/auth") // the same connection, now authenticated
	await("after authenticating", 0)
	get("/detached") // reuses the released connection: nothing changes
	await("after a detached authentication", 0)

	var raw []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		raw = append(raw, c)
	}
	await("two silent connections", 2)
	extra, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(extra)
	if !strings.HasPrefix(string(got), "HTTP/1.1 503 ") || gate.Refused() != 1 {
		t.Fatalf("beyond the limit got %q (%d refused), want a 503", got, gate.Refused())
	}
	raw[0].Close()
	await("after a silent connection closed", 1)

	// A detached context without a connection behind it is harmless.
	edge.Authenticated(edge.Detach(context.Background()))
}

// TestStreamOutlivesTimeouts serves a response that lasts past the body and
// write timeouts: with Stream it is delivered whole, without it the server's
// write deadline cuts it off.
func TestStreamOutlivesTimeouts(t *testing.T) {
	cfg := edge.Config{HeaderTimeout: 100 * time.Millisecond, BodyTimeout: 100 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stream := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			if err := edge.Stream(w); err != nil {
				t.Error(err)
			}
		}
		start := time.Now()
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		// Write again only once both deadlines lie in the past.
		for time.Since(start) < 3*cfg.WriteTimeout {
			time.Sleep(20 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "last\n")
	}
	srv := cfg.Server(http.HandlerFunc(stream), nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(cfg.NewListener(ln)) }()
	defer func() {
		_ = srv.Close()
		<-done
	}()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for path, want := range map[string]string{"/stream": "first\nlast\n", "/plain": "first\n"} {
		resp, err := client.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("%s: got %q, want %q", path, body, want)
		}
	}
}

// TestConnRawSocket: an accepted connection hands out its socket's raw
// connection, so writers that bypass the wrapper (wsconn's batch flush)
// still find it.
func TestConnRawSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := edge.Config{}.NewListener(ln)
	defer gate.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := gate.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no SyscallConn", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fdOK bool
	if err := rc.Control(func(fd uintptr) { fdOK = fd > 0 }); err != nil || !fdOK {
		t.Fatalf("raw connection: %v, fd seen %v", err, fdOK)
	}
}
