package multinode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestResumeMemoryBound is the reproduction of the resume memory bomb: a
// real gateway process on a real Redis holding 48 MiB of one stream's
// history, and twenty connections that resume from its start and never
// read. The gateway's resident memory (VmRSS of the process, read from
// /proc: what the kernel charges the node, heap and runtime overhead
// included, so a faithful measure of what killed the node) stays under
// 400 MiB, /readyz answers 200 throughout, a healthy client keeps receiving
// live events, and a new subscription still succeeds.
func TestResumeMemoryBound(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	srv := redistest.Start(t)
	p := startProc(t, srv.URL(), 0)
	base := "http://" + p.Addr()
	pid := p.cmd.Process.Pid
	rss0 := rssOf(t, pid)

	// 48 MiB of history in p1/big: 960 events of 50 KiB, written straight
	// through the gateway's Redis function, 20 events a call, 48 calls in
	// one pipeline.
	const events, size = 960, 50 << 10
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	defer rdb.Close()
	pad := strings.Repeat("x", size)
	var first string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmds, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for b := 0; b < events/20; b++ {
			args := make([]any, 20)
			for i := range args {
				args[i] = fmt.Sprintf(`{"type":"document:updated","project":"p1","collection":"big","documentId":"d%d","document":{"pub":0,"seq":%d},"oldDocument":"%s"}`, b*20+i, b*20+i, pad)
			}
			// The gateway's own entry point for events it encoded: no
			// strict JSON scan of 50 KiB strings in Lua.
			pl.FCall(ctx, "syncgate_publish_encoded", []string{"sg:{p1}:epoch"}, args...)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("writing history: %v", err)
	}
	if offs, err := cmds[0].(*redis.Cmd).StringSlice(); err != nil || len(offs) != 20 {
		t.Fatalf("first batch: %v %v", offs, err)
	} else {
		first = offs[0]
	}

	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
	wsURL := "ws://" + p.Addr() + "/v1/ws"
	healthy := dialRaw(t, wsURL, tok)
	sub, _ := json.Marshal(map[string]any{"op": "subscribe", "id": "live", "project": "p1", "collection": "live"})
	if err := healthy.Write(ctx, websocket.MessageText, sub); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ready", "subscribed"} {
		_, data, err := healthy.Read(ctx)
		var f wstest.Frame
		if err != nil || json.Unmarshal(data, &f) != nil || f.Op != want {
			t.Fatalf("healthy client: %.200s %v, want %s", data, err, want)
		}
	}

	// A publisher on another stream, and the healthy client counting what
	// it receives.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var published, received atomic.Int64
	pubErr := make(chan error, 1)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := publish(base, []syncgate.Event{seqEvent("p1", "live", 0, i, nil)}); err != nil {
				pubErr <- err
				return
			}
			published.Add(1)
			time.Sleep(10 * time.Millisecond) // pacing the load, not awaiting anything
		}
	})
	recvErr := make(chan error, 1)
	wg.Go(func() {
		next := 0
		for {
			_, data, err := healthy.Read(context.Background())
			if err != nil {
				select {
				case <-stop:
				default:
					recvErr <- fmt.Errorf("healthy client lost its connection: %v", err)
				}
				return
			}
			var f wstest.Frame
			if err := json.Unmarshal(data, &f); err != nil || f.Op == "error" {
				recvErr <- fmt.Errorf("healthy client got %.200s (%v)", data, err)
				return
			}
			for _, ev := range f.Events {
				var d seqDoc
				if err := json.Unmarshal(ev.Document, &d); err != nil || d.Seq != next {
					recvErr <- fmt.Errorf("healthy client got %s, want seq %d", ev.Document, next)
					return
				}
				next++
				received.Add(1)
			}
		}
	})
	defer func() {
		close(stop)
		healthy.CloseNow()
		wg.Wait()
	}()

	// Monitor the process while twenty stalled clients resume from the
	// start of the history.
	var peak int64
	check := func(what string) {
		t.Helper()
		rss := rssOf(t, pid)
		peak = max(peak, rss)
		if rss > 400<<20 {
			t.Fatalf("%s: gateway RSS %d MiB (started at %d MiB)", what, rss>>20, rss0>>20)
		}
		if code := readyz(t, base); code != http.StatusOK {
			t.Fatalf("%s: /readyz %d (RSS %d MiB, peak %d MiB)", what, code, rss>>20, peak>>20)
		}
		select {
		case err := <-pubErr:
			t.Fatalf("%s: publisher: %v", what, err)
		case err := <-recvErr:
			t.Fatal(err)
		default:
		}
	}
	for i := 0; i < 20; i++ {
		c := wstest.Dial(t, wsURL, wstest.DialOptions{Token: tok, NoRead: true})
		c.Send(map[string]any{"op": "subscribe", "id": "r", "project": "p1", "collection": "big", "since": first})
		check(fmt.Sprintf("resumer %d", i))
	}
	// Every resume has begun (its subscription counted) …
	for metric(t, base, `syncgate_subscriptions{transport="ws"}`) < 21 {
		check("waiting for the resumes")
		time.Sleep(50 * time.Millisecond)
	}
	// … and the healthy client goes on receiving, meanwhile and after.
	mark := received.Load()
	for received.Load() < mark+500 {
		check("while the resumers stall")
		time.Sleep(50 * time.Millisecond)
	}
	late := wstest.Dial(t, wsURL, wstest.DialOptions{Token: tok})
	if f := late.Subscribe("late", "p1", "big", ""); f.Op != "subscribed" {
		t.Fatalf("a new subscription during the resumes: %s", f.Raw)
	}
	check("after a new subscription")
	t.Logf("RSS %d MiB at start, peak %d MiB; %d live events published, %d received; history reads %v, shared %v",
		rss0>>20, peak>>20, published.Load(), received.Load(),
		metric(t, base, `syncgate_history_reads_total{kind="read"}`), metric(t, base, `syncgate_history_reads_total{kind="shared"}`))
}

// dialRaw connects a client that the test reads itself, from any
// goroutine.
func dialRaw(t testing.TB, wsURL, tok string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		Subprotocols: []string{"syncgate.v1"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// rssOf returns the resident set size of process pid, from /proc.
func rssOf(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for process %d", pid)
	return 0
}

// metric returns the value of one sample (name with its labels, as
// exposed) from a node's /metrics, 0 when absent.
func metric(t testing.TB, base, sample string) float64 {
	t.Helper()
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
