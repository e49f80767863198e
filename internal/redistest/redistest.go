// Package redistest starts real redis-server processes for tests: a
// standalone server or a three-master cluster, on free loopback ports, with
// no persistence. Every process is killed by its PID at test cleanup.
//
// When redis-server is not installed the test is skipped, except under
// CI=true, where that is a failure. Helpers take testing.TB and are safe to
// call from one test goroutine.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of redis-server, skipping (or, under CI=true,
// failing) the test when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (CI=true requires it): %v", err)
		}
		t.Skipf("redis-server not installed: %v", err)
	}
	return p
}

// Server is one redis-server process.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	Port    int
	extra   []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr chan error
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is redis://host:port.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Start starts a standalone redis-server on a free port, keeping data in
// memory only: Kill and Restart lose it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer(t, freePort(t, false), nil)
	s.start()
	return s
}

// StartPersistent starts a standalone redis-server that writes every
// change to an append-only file (fsync always), so Kill and Restart keep
// the data.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	s := newServer(t, freePort(t, false), []string{"--appendonly", "yes", "--appendfsync", "always"})
	s.start()
	return s
}

func newServer(t testing.TB, port int, extra []string) *Server {
	return &Server{t: t, bin: Binary(t), dir: t.TempDir(), Port: port, extra: extra}
}

func (s *Server) start() {
	s.t.Helper()
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "",
		"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "no",
	}
	if !slices.Contains(s.extra, "--appendonly") {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.extra...)
	cmd := exec.Command(s.bin, args...)
	logf, err := os.Create(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	logf.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.waitErr = cmd, waitErr
	s.mu.Unlock()
	s.t.Cleanup(func() { s.kill() })
	AwaitReady(s.t, fmt.Sprintf("redis-server on port %d", s.Port), waitErr, filepath.Join(s.dir, "redis.log"),
		10*time.Second, "answer PING", func() bool { return ping(s.Addr()) == nil })
}

// AwaitReady polls ready every 20 ms until it reports true. It fails t,
// with the server's log at logPath, when the process ends first (its exit
// arrives on waitErr, and is put back for whoever stops it), and when
// within passes: "<what> did not <readiness> within <within>".
func AwaitReady(t testing.TB, what string, waitErr chan error, logPath string, within time.Duration, readiness string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ready() {
		select {
		case err := <-waitErr:
			waitErr <- err
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited: %v\n%s", what, err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not %s within %s", what, readiness, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the process id of the running redis-server, for tests that
// signal it (SIGSTOP to freeze it, SIGCONT to let it go on).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Kill stops the process with SIGKILL (its data, kept only in memory, is
// lost) and waits for it to exit.
func (s *Server) Kill() { s.kill() }

func (s *Server) kill() {
	s.mu.Lock()
	cmd, waitErr := s.cmd, s.waitErr
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-waitErr
}

// Restart starts the server again on the same port: empty, unless it was
// started with StartPersistent.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// Do runs one command through redis-cli-free RESP and returns the reply as
// text, for setup and assertions that need no client library.
func (s *Server) Do(args ...string) (string, error) { return do(s.Addr(), args...) }

// Cluster is three redis-server processes forming a cluster of three
// masters and no replicas.
type Cluster struct {
	Nodes []*Server
}

// URL is redis+cluster://host1:port,host2:port,host3:port.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// StartCluster starts three cluster-enabled servers, joins them with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		Binary(t)
		t.Fatalf("redis-cli not installed: %v", err)
	}
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		port := freePort(t, true)
		s := newServer(t, port, []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"})
		s.start()
		c.Nodes = append(c.Nodes, s)
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.Nodes {
		for {
			info, err := n.Do("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok within 30s: %v %s", n.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// freePort returns a loopback port that is free now, chosen below the
// kernel's ephemeral range so that no outgoing connection takes it while a
// killed server is down (Restart reuses the port). With bus set, port +
// 10000 (the cluster bus) is free too.
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	lo, hi := 10000, ephemeralLow()-1
	if bus {
		hi = min(hi, 55535)
	}
	if hi-lo < 1000 {
		lo, hi = 1024, 65535-10000
	}
	for i := 0; i < 200; i++ {
		port := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		if !bus {
			return port
		}
		ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		ln2.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

func ping(addr string) error {
	r, err := do(addr, "PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("PING answered %q", r)
	}
	return nil
}

// do sends one command in RESP and reads a simple reply: status, error,
// integer or bulk string (arrays are flattened with newlines).
func do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		parts := make([]string, 0, max(n, 0))
		for i := 0; i < n; i++ {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
