package multinode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

var (
	buildOnce  sync.Once
	gatewayBin string
	buildErr   error
	buildDir   string
)

// gatewayBinary builds cmd/gateway once per test binary.
func gatewayBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "syncgate-gateway-")
		if buildErr != nil {
			return
		}
		gatewayBin = filepath.Join(buildDir, "gateway")
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		out, err := exec.Command(goBin, "build", "-o", gatewayBin, "github.com/syncgate/syncgate/cmd/gateway").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/gateway: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return gatewayBin
}

// proc is one gateway process on a fixed address.
type proc struct {
	t      testing.TB
	mu     sync.Mutex
	addr   string // guarded by mu: a restart may move to another port
	env    []string
	log    string
	cmd    *exec.Cmd
	exited chan error
}

// freeAddr is a loopback address below the ephemeral port range, so no
// outgoing connection takes it while the node restarts.
func freeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
}

func startProc(t testing.TB, redisURL string, i int) *proc {
	t.Helper()
	p := &proc{t: t, addr: freeAddr(t), log: filepath.Join(t.TempDir(), "gateway"+strconv.Itoa(i)+".log"), env: []string{
		"SYNCGATE_REDIS_URL=" + redisURL,
		"SYNCGATE_JWT_SECRET=" + wstest.Secret,
		"SYNCGATE_PUBLISH_KEYS=" + wstest.Key,
		"SYNCGATE_SHUTDOWN_GRACE=1s",
		"SYNCGATE_HISTORY_SIZE=100000",
		"SYNCGATE_LOG_FORMAT=json",
	}}
	p.start()
	t.Cleanup(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// Addr is the node's current listen address.
func (p *proc) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// start starts the process on its address; when that port was taken
// meanwhile (an outgoing connection may get it as its ephemeral port while
// the node is down), it moves to a new one.
func (p *proc) start() {
	p.t.Helper()
	for attempt := 0; ; attempt++ {
		if p.tryStart() || attempt == 5 {
			return
		}
		p.mu.Lock()
		p.addr = freeAddr(p.t)
		p.mu.Unlock()
	}
}

func (p *proc) tryStart() bool {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(gatewayBinary(p.t))
	cmd.Env = append(append(os.Environ(), p.env...), "SYNCGATE_ADDR="+p.Addr())
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	f.Close()
	p.cmd = cmd
	p.exited = make(chan error, 1)
	go func() { p.exited <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + p.Addr() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case err := <-p.exited:
			log, _ := os.ReadFile(p.log)
			if strings.Contains(string(log), "address already in use") {
				p.cmd = nil
				return false
			}
			p.t.Fatalf("gateway exited at start: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.log)
			p.t.Fatalf("gateway %s not ready within 15s:\n%s", p.Addr(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			log, _ := os.ReadFile(p.log)
			p.t.Fatalf("gateway %s exited with %v after SIGTERM:\n%s", p.Addr(), err, log)
		}
	case <-time.After(15 * time.Second):
		p.t.Fatalf("gateway %s still running 15s after SIGTERM", p.Addr())
	}
	p.cmd = nil
}

// resumingClient subscribes on one node and, whenever its connection
// ends, reconnects to the next node and resumes with since.
type resumingClient struct {
	subscribed chan struct{} // closed at the first subscribed frame
	events     []syncgate.Event
	closeCodes map[websocket.StatusCode]int
	err        error
}

func (rc *resumingClient) run(ctx context.Context, addrs func() []string, start int, token string, until *atomic.Int64) {
	rc.closeCodes = map[websocket.StatusCode]int{}
	since := ""
	node := start
	for ctx.Err() == nil {
		list := addrs()
		url := "ws://" + list[node%len(list)] + "/v1/ws"
		node++
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{
			Subprotocols: []string{"syncgate.v1"},
			HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
		})
		cancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ws.SetReadLimit(16 << 20)
		sub, _ := json.Marshal(map[string]any{"op": "subscribe", "id": "1", "project": "p1", "collection": "c", "since": since})
		if err := ws.Write(ctx, websocket.MessageText, sub); err != nil {
			ws.CloseNow()
			continue
		}
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				rc.closeCodes[websocket.CloseStatus(err)]++
				ws.CloseNow()
				break
			}
			var f wstest.Frame
			if err := json.Unmarshal(data, &f); err != nil {
				rc.err = err
				ws.CloseNow()
				return
			}
			switch f.Op {
			case "subscribed":
				if since == "" {
					select {
					case <-rc.subscribed:
					default:
						close(rc.subscribed)
					}
				}
				if since != "" && !f.Recovered {
					rc.err = fmt.Errorf("resume from %s on %s: recovered:false", since, url)
					ws.CloseNow()
					return
				}
			case "events":
				rc.events = append(rc.events, f.Events...)
				since = f.Events[len(f.Events)-1].Offset
				var d seqDoc
				_ = json.Unmarshal(f.Events[len(f.Events)-1].Document, &d)
				if int64(d.Seq) >= until.Load() {
					ws.Close(websocket.StatusNormalClosure, "")
					return
				}
			case "ready":
			default:
				rc.err = fmt.Errorf("unexpected frame %s", data)
				ws.CloseNow()
				return
			}
		}
	}
	if rc.err == nil {
		rc.err = ctx.Err()
	}
}

// TestRollingRestart runs 3 real gateway processes on one Redis with
// clients spread over them and a publisher going on; each node in turn
// gets SIGTERM (closing its clients with 1012) and is restarted. Clients
// reconnect to another node and resume; at the end each has every event
// once, in order.
func TestRollingRestart(t *testing.T) {
	srv := redistest.Start(t)
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = startProc(t, srv.URL(), i)
	}
	var down atomic.Int32 // index+1 of the node being restarted, 0 for none
	addrs := func() []string {
		var out []string
		for i, p := range procs {
			if int(down.Load()) != i+1 {
				out = append(out, p.Addr())
			}
		}
		return out
	}
	allAddrs := func() []string { return []string{procs[0].Addr(), procs[1].Addr(), procs[2].Addr()} }

	const nClients = 9
	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	clients := make([]*resumingClient, nClients)
	var wg sync.WaitGroup
	var until atomic.Int64 // the marker's seq, once known
	until.Store(1 << 40)
	for i := range clients {
		clients[i] = &resumingClient{subscribed: make(chan struct{})}
		wg.Add(1)
		go func(rc *resumingClient, i int) {
			defer wg.Done()
			rc.run(ctx, allAddrs, i%3, tok, &until)
		}(clients[i], i)
	}

	for i, rc := range clients {
		select {
		case <-rc.subscribed:
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d not subscribed within 10s", i)
		}
	}
	// Publisher: one event at a time, each retried on another node until
	// acknowledged (a failed request was never processed: the node stops
	// accepting before it drains).
	stop := make(chan struct{})
	var published atomic.Int64
	var ambiguous sync.Map // seq → true when a publish of it failed in transit
	pubErr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				pubErr <- nil
				return
			case <-tick.C:
			}
			for attempt := 0; ; attempt++ {
				list := addrs()
				status, _, err := publish("http://"+list[attempt%len(list)], []syncgate.Event{seqEvent("p1", "c", 0, seq, nil)})
				if err == nil {
					break
				}
				if status == 0 {
					// A transport error: the request may have been
					// processed, so the retry may publish it twice.
					ambiguous.Store(seq, true)
				}
				t.Logf("publish seq %d attempt %d: %v", seq, attempt, err)
				if attempt > 200 {
					pubErr <- fmt.Errorf("seq %d: %v", seq, err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			published.Store(int64(seq + 1))
		}
	}()

	await(t, 10*time.Second, "publishing", func() bool { return published.Load() > 100 })
	for i, p := range procs {
		down.Store(int32(i + 1))
		p.stop()
		p.start()
		down.Store(0)
		n := published.Load()
		await(t, 10*time.Second, "publishing after the restart", func() bool { return published.Load() > n+100 })
	}
	close(stop)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	total := int(published.Load())
	until.Store(int64(total))
	// A final marker tells clients the stream is complete.
	for {
		if _, _, err := publish("http://"+procs[0].Addr(), []syncgate.Event{seqEvent("p1", "c", 0, total, nil)}); err == nil {
			break
		}
	}
	// Clients stop at the marker (or when ctx ends, failing below).
	wg.Wait()
	closes1012 := 0
	for i, rc := range clients {
		if rc.err != nil && rc.err != context.Canceled {
			t.Fatalf("client %d: %v", i, rc.err)
		}
		closes1012 += rc.closeCodes[websocket.StatusServiceRestart]
		want := 0
		for j, ev := range rc.events {
			d := docOf(t, ev)
			if d.Seq == want-1 {
				if _, ok := ambiguous.Load(d.Seq); ok {
					continue // published twice by the publisher's retry
				}
			}
			if d.Seq != want {
				t.Fatalf("client %d: event %d has seq %d, want %d (offset %s, previous %s); connections ended with %v",
					i, j, d.Seq, want, ev.Offset, rc.events[max(j-1, 0)].Offset, rc.closeCodes)
			}
			want++
		}
		if want != total+1 {
			t.Fatalf("client %d: %d distinct events, want %d", i, want, total+1)
		}
		checkOrdered(t, "client", rc.events)
	}
	if closes1012 < nClients {
		t.Fatalf("only %d closes with 1012 across %d clients and 3 restarts", closes1012, nClients)
	}
	t.Logf("%d events; %d clients; %d closes with 1012", total+1, nClients, closes1012)
}
