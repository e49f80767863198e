// Package pgtest starts private PostgreSQL servers for tests: initdb in a
// temporary directory, then `postgres` on a free loopback port with
// wal_level=logical, track_commit_timestamp, trust authentication and no
// fsync. Every process is stopped by its PID at test cleanup.
//
// The binaries are looked up under /usr/lib/postgresql/*/bin (Debian's
// layout, not on PATH), then on PATH. When they are missing the test is
// skipped, except under CI=true, where that is a failure. initdb refuses to
// run as root, so a root test process runs the server as the `postgres`
// system user, with the data directory chowned to it.
//
// Helpers take testing.TB and are meant to be called from the test
// goroutine.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/redistest"
)

// Bin returns the directory holding initdb and postgres, skipping (or,
// under CI=true, failing) the test when PostgreSQL is not installed.
func Bin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, none on PATH); CI=true requires it")
	}
	t.Skip("PostgreSQL not installed (no /usr/lib/postgresql/*/bin/initdb)")
	return ""
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Server is one PostgreSQL server process.
type Server struct {
	t    testing.TB
	bin  string
	dir  string // data directory
	Port int
	cred *syscall.Credential

	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr chan error
}

// Start runs initdb and starts a server on a free loopback port.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Bin(t), Port: redistest.FreePort(t)}
	base, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	s.dir = filepath.Join(base, "data")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and there is no postgres user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"), "-D", s.dir, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.start()
	return s
}

// URL is a libpq URL for the postgres database as the postgres superuser.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

func (s *Server) start() {
	s.t.Helper()
	logPath := filepath.Join(filepath.Dir(s.dir), "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dir,
		"-p", strconv.Itoa(s.Port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+filepath.Dir(s.dir),
		"-c", "wal_level=logical", "-c", "max_replication_slots=10", "-c", "max_wal_senders=10",
		"-c", "fsync=off", "-c", "track_commit_timestamp=on", "-c", "max_connections=50", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start postgres: %v", err)
	}
	logf.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.waitErr = cmd, waitErr
	s.mu.Unlock()
	s.t.Cleanup(func() { s.stop(syscall.SIGQUIT) })
	redistest.AwaitReady(s.t, fmt.Sprintf("postgres on port %d", s.Port), waitErr, logPath, 60*time.Second, "accept connections", func() bool {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return s.ready()
	})
}

// ready reports whether the server accepts queries (not starting up or in
// recovery), using pg_isready when it is installed.
func (s *Server) ready() bool {
	p := filepath.Join(s.bin, "pg_isready")
	if _, err := os.Stat(p); err != nil {
		return true
	}
	return exec.Command(p, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres").Run() == nil
}

// PID is the process id of the running postmaster (its backends and
// walsenders are its children), for tests that measure their CPU.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Stop shuts the server down cleanly (fast shutdown: a checkpoint, then
// exit) and waits for it.
func (s *Server) Stop() { s.stop(syscall.SIGINT) }

// Crash stops the server with an immediate shutdown (no checkpoint: the
// restart replays WAL, as after a crash) and waits for it.
func (s *Server) Crash() { s.stop(syscall.SIGQUIT) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, waitErr := s.cmd, s.waitErr
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-waitErr:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-waitErr
	}
}

// Restart starts the stopped server again on the same port and data.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}
