package deploy

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testlog"
)

// imageUID is the USER of the Dockerfile's final stage.
const imageUID = 65532

// TestStaticBinaryInEmptyRoot builds the image's binaries exactly as the
// Dockerfile does (its RUN of scripts/build-static.sh, on a copy of the tree
// filtered by .dockerignore), then starts the gateway chrooted into a directory
// that holds nothing but the binary, as the image's non-root user with the
// image's environment, and checks that it serves /healthz, /readyz and
// /metrics, keeps its secrets out of its logs and exits 0 on SIGTERM. That is
// what FROM scratch gives it, minus the /dev, /proc and /etc/hosts a container
// runtime adds, so passing here means the image needs nothing else.
func TestStaticBinaryInEmptyRoot(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	if runtime.GOOS != "linux" {
		t.Skip("chroot test runs on Linux only")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to chroot into an empty directory (CI runs as root)")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if ci {
			t.Fatalf("CI=true, cannot skip: "+format, args...)
		}
		t.Skipf(format, args...)
	}

	root := repoRoot(t)
	step := findBuildStep(t, parseDockerfile(t, filepath.Join(root, "Dockerfile")))
	var build []string
	for _, name := range step.commands {
		switch {
		case hasGoFiles(filepath.Join(root, "cmd", name)):
			build = append(build, name)
		case name == "gateway":
			missing("cmd/gateway has no Go files yet")
		default:
			// Only the gateway is needed here; `docker build` itself would
			// fail on the missing command, so say so loudly.
			t.Logf("WARNING: the Dockerfile builds cmd/%s, which has no Go files yet; docker build would fail. Building the others.", name)
		}
	}

	bin := t.TempDir()
	buildLikeDockerfile(t, root, bin, build)
	for _, name := range build {
		assertStatic(t, filepath.Join(bin, name))
	}

	// The empty root: one directory, one file, owned by root and read-only to
	// the gateway, as the image's filesystem is.
	chroot := t.TempDir()
	if err := os.Chmod(chroot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(bin, "gateway"), filepath.Join(chroot, "gateway")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(chroot, "gateway"), 0o755); err != nil {
		t.Fatal(err)
	}

	const (
		jwtSecret  = "static-test-jwt-secret-5b9c7e1f0a2d"
		publishKey = "static-test-publish-key-3e8a91c4d6"
	)
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	env := envOf(t, parseDockerfile(t, filepath.Join(root, "Dockerfile")).final())
	env["SYNCGATE_ADDR"] = addr
	if _, separate := env["SYNCGATE_METRICS_ADDR"]; separate {
		env["SYNCGATE_METRICS_ADDR"] = metricsAddr
	} else {
		metricsAddr = addr
	}
	env["SYNCGATE_JWT_SECRET"] = jwtSecret
	env["SYNCGATE_PUBLISH_KEYS"] = publishKey
	env["SYNCGATE_SHUTDOWN_GRACE"] = "2s"
	env["SYNCGATE_LOG_FORMAT"] = "json"

	gw := startChrooted(t, chroot, "/gateway", env)

	waitFor(t, gw, "http://"+addr+"/healthz", 20*time.Second)
	for _, url := range []string{"http://" + addr + "/readyz", "http://" + metricsAddr + "/metrics"} {
		code, body := get(t, url)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", url, code, truncate(body))
		}
		if strings.HasSuffix(url, "/metrics") && !strings.Contains(body, "syncgate_connections") {
			t.Errorf("GET %s: no syncgate_connections in\n%s", url, truncate(body))
		}
	}

	// Stop it by its PID, as the kubelet does, and expect a clean drain.
	if err := syscall.Kill(gw.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM pid %d: %v", gw.cmd.Process.Pid, err)
	}
	select {
	case <-gw.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("gateway (pid %d) still running 15s after SIGTERM with a 2s grace; output:\n%s", gw.cmd.Process.Pid, gw.out.String())
	}
	if gw.err != nil {
		t.Errorf("gateway exited with %v after SIGTERM, want status 0; output:\n%s", gw.err, gw.out.String())
	}

	logs := gw.out.String()
	t.Logf("gateway output:\n%s", logs)
	for _, secret := range []string{jwtSecret, publishKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("the gateway logged a secret (%.12s…)", secret)
		}
	}
	for line := range strings.Lines(logs) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("SYNCGATE_LOG_FORMAT=json but a log line is not JSON: %q", strings.TrimSpace(line))
		}
	}
}

// final is the stage that becomes the image.
func (d dockerfile) final() stage { return d.stages[len(d.stages)-1] }

// buildLikeDockerfile copies the build context that `docker build .` would
// send, and runs the build script in it with the commands the Dockerfile
// names (those that exist), for the host platform.
func buildLikeDockerfile(tb testing.TB, root, out string, commands []string) {
	tb.Helper()
	ctxDir := tb.TempDir()
	copyBuildContext(tb, root, ctxDir)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{buildScript, out}, commands...)...)
	cmd.Dir = ctxDir
	// As in the Dockerfile's RUN: the target platform is set explicitly.
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("sh %s %s %v (in a copy of the Docker build context): %v\n%s", buildScript, out, commands, err, b)
	}
	tb.Logf("built %v in %s", commands, time.Since(start).Round(time.Millisecond))
}

// assertStatic checks that a binary asks nothing of the filesystem it starts
// on: no program interpreter (dynamic loader), no shared libraries, and no
// symbol table (-s), as the image should ship it.
func assertStatic(tb testing.TB, path string) {
	tb.Helper()
	f, err := elf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			tb.Errorf("%s has a program interpreter: not static (cgo crept in?)", filepath.Base(path))
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		tb.Errorf("%s needs shared libraries %v (err %v)", filepath.Base(path), libs, err)
	}
	if f.Section(".symtab") != nil {
		tb.Errorf("%s has a symbol table: not built with -ldflags -s", filepath.Base(path))
	}
}

// process is a started child and what became of it.
type process struct {
	cmd  *exec.Cmd
	out  *testlog.Buffer
	done chan struct{} // closed when the process has exited; err is set then
	err  error
}

// startChrooted starts path inside root as the image's user, with exactly
// env as its environment, and kills it at cleanup if it is still running.
func startChrooted(tb testing.TB, root, path string, env map[string]string) *process {
	tb.Helper()
	p := &process{out: &testlog.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path)
	p.cmd.Dir = "/"
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	for _, k := range slices.Sorted(maps.Keys(env)) {
		p.cmd.Env = append(p.cmd.Env, k+"="+env[k])
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID},
		Pdeathsig:  syscall.SIGKILL, // never outlive the test binary
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s chrooted in %s: %v", path, root, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

// waitFor polls url until it answers 200, failing early if the process exits.
func waitFor(tb testing.TB, p *process, url string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			tb.Fatalf("gateway exited (%v) before %s answered; output:\n%s", p.err, url, p.out.String())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, truncate(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("GET %s did not answer 200 within %s (last: %s); output:\n%s", url, timeout, last, p.out.String())
}

func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		tb.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, below the ephemeral range (see redistest.FreePort).
func freeAddr(tb testing.TB) string {
	tb.Helper()
	return "127.0.0.1:" + strconv.Itoa(redistest.FreePort(tb))
}

func hasGoFiles(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return slices.ContainsFunc(m, func(p string) bool { return !strings.HasSuffix(p, "_test.go") })
}

func truncate(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
