package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chromium is a headless Chromium driven over the DevTools protocol: the
// browser that runs a plain `new EventSource(url)` in the tests.
type chromium struct {
	cmd     *exec.Cmd
	ws      *websocket.Conn
	session string // the page's flattened DevTools session
	nextID  int
	mu      sync.Mutex
}

// startChromium starts a headless Chromium on a page at url; it is stopped
// at cleanup. Without a chromium the test is skipped, unless CI is set.
func startChromium(t *testing.T, url string) *chromium {
	t.Helper()
	path := os.Getenv("CHROMIUM_PATH")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium missing at %s: apt-get install -y chromium", path)
		}
		t.Skipf("chromium missing at %s", path)
	}
	dir := t.TempDir()
	if _, err := os.Stat("/usr/lib/chromium/chromium"); err == nil && path == "/usr/bin/chromium" {
		path = "/usr/lib/chromium/chromium" // the binary, not the launcher script that forks it
	}
	cmd := exec.Command(path, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
		"--user-data-dir="+dir, "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers are stopped with it
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &chromium{cmd: cmd}
	lines := make(chan string, 1)
	done := make(chan struct{})
	go func() { // owned by the test: it ends when chromium closes stderr
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if l := sc.Text(); !sent && strings.HasPrefix(l, "DevTools listening on ") {
				lines <- strings.TrimPrefix(l, "DevTools listening on ")
				sent = true
			}
		}
	}()
	t.Cleanup(func() {
		if c.ws != nil {
			c.ws.CloseNow()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		<-done
	})
	var browserURL string
	select {
	case browserURL = <-lines:
	case <-done:
		t.Fatal("chromium exited before listening for DevTools")
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not listen for DevTools within 30s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, browserURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(64 << 20)
	c.ws = ws
	var target struct{ TargetID string }
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": url}, &target); err != nil {
		t.Fatal(err)
	}
	var attached struct{ SessionID string }
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		t.Fatal(err)
	}
	c.session = attached.SessionID
	// The page loads on its own; evaluations before its script ran fail or
	// see no waitFor, so wait until it is there.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		if err := c.eval(ctx, `document.readyState === 'complete' && typeof window.waitFor === 'function'`, &ok); err == nil && ok {
			return c
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the page did not load within 30s")
		}
	}
}

// call sends one DevTools command and waits for its answer, skipping the
// events in between.
func (c *chromium) call(ctx context.Context, session, method string, params, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	id := c.nextID
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return err
	}
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		var r struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &r) != nil || r.ID != id {
			continue
		}
		if r.Error != nil {
			return fmt.Errorf("%s: %s", method, r.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(r.Result, result)
	}
}

// eval evaluates a JavaScript expression in the page, awaiting it when it
// is a promise, and decodes its JSON value into out.
func (c *chromium) eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := c.call(ctx, c.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true,
	}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return errors.New(e.Text + " " + e.Exception.Description)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}
