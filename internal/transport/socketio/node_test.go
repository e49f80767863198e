package socketio_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestSocketIOClient runs the real socket.io-client (npm, pinned in
// testdata/node/package-lock.json) against two gateway processes sharing a
// real Redis. It runs only with SYNCGATE_SOCKETIO_NODE=1, which
// `make test-socketio` sets after `npm ci` (so `go test ./...` does not run
// it twice); then a missing node or client is a failure, never a skip.
func TestSocketIOClient(t *testing.T) {
	if os.Getenv("SYNCGATE_SOCKETIO_NODE") == "" {
		t.Skip("set SYNCGATE_SOCKETIO_NODE=1 after npm ci in testdata/node (make test-socketio)")
	}
	dir, err := filepath.Abs("testdata/node")
	if err != nil {
		t.Fatal(err)
	}
	nodeBin, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "socket.io-client"))
	}
	if err != nil {
		t.Fatalf("node and socket.io-client are required (run make test-socketio): %v", err)
	}
	if testing.Short() {
		t.Skip("starts gateway processes")
	}

	bin := filepath.Join(t.TempDir(), "gateway")
	build := exec.Command("go", "build", "-o", bin, "github.com/syncgate/syncgate/cmd/gateway")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gateway: %v\n%s", err, out)
	}
	redis := redistest.Start(t)
	a := startGateway(t, bin, redis.URL())
	b := startGateway(t, bin, redis.URL())

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--test", "--test-force-exit", "--test-reporter=spec", "socketio.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GATEWAY_A="+a, "GATEWAY_B="+b,
		"PUBLISH_KEY="+wstest.Key,
		"TOKEN="+wstest.Token(t, "app-user", time.Hour, []string{"*"}, nil, nil),
		"OTHER_SECRET_TOKEN="+signedWithOtherSecret(t),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("node --test socketio.test.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("socket.io-client tests failed: %v", err)
	}
}

// startGateway runs the gateway binary on a free loopback port and returns
// its base URL; it is killed at cleanup.
func startGateway(t *testing.T, bin, redisURL string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"SYNCGATE_ADDR="+addr, "SYNCGATE_REDIS_URL="+redisURL,
		"SYNCGATE_JWT_SECRET="+wstest.Secret, "SYNCGATE_PUBLISH_KEYS="+wstest.Key,
		"SYNCGATE_SHUTDOWN_GRACE=1s", "SYNCGATE_LOG_LEVEL=warn",
		// The load test opens 2,000 connections at once, more than the
		// default bound of unauthenticated ones (1,000, internal/edge).
		"SYNCGATE_MAX_UNAUTHENTICATED=4000",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("gateway %s log:\n%s", addr, log)
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("gateway exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway on %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signedWithOtherSecret is a well-formed token the gateways must refuse.
func signedWithOtherSecret(t *testing.T) string {
	tok, err := auth.SignHS256([]byte("not-the-gateway-secret-0123456789abcdef"), auth.Claims{
		Subject: "app-user", ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
