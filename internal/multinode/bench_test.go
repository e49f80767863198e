package multinode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestThroughputLatency measures the Redis backplane end to end: HTTP
// publish on node A, delivery to WebSocket subscribers on node B. It is a
// measurement, not a check, so it runs only with SYNCGATE_BENCH=1:
//
//	SYNCGATE_BENCH=1 go test -run TestThroughputLatency -v -timeout 10m ./internal/multinode
//
// Throughput: 4 publishers post batches of 100 as fast as they can for 5 s
// to A; one subscriber on B counts. Latency: 1,000 subscribers on B, a
// paced publisher at 1,000 and 10,000 events/s (batches every 10 ms) for
// 5 s; latency is publish-request start (stamped in the event) to the
// frame read, sampled on 20 of the 1,000 subscribers (the others read and
// discard, so the test client's own decoding does not dominate).
func TestThroughputLatency(t *testing.T) {
	if os.Getenv("SYNCGATE_BENCH") != "1" {
		t.Skip("a measurement; set SYNCGATE_BENCH=1")
	}
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 2, func(c *backplane.RedisConfig) { c.HistorySize = 1000 })
	a, b := nodes[0], nodes[1]
	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)

	t.Run("throughput", func(t *testing.T) {
		var got atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := listen(t, ctx, b.WSURL(), tok, "tp", func(n int, _ []syncgate.Event) { got.Add(int64(n)) }, false)
		var sent atomic.Int64
		stop := time.Now().Add(5 * time.Second)
		var wg sync.WaitGroup
		for p := 0; p < 4; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					evs := make([]syncgate.Event, 100)
					for i := range evs {
						evs[i] = seqEvent("p1", "tp", p, i, nil)
					}
					if _, _, err := publish(a.URL, evs); err != nil {
						t.Error(err)
						return
					}
					sent.Add(100)
				}
			}()
		}
		start := time.Now()
		wg.Wait()
		await(t, 30*time.Second, "delivery of everything", func() bool { return got.Load() >= sent.Load() })
		el := time.Since(start)
		t.Logf("throughput: %d events published over HTTP on node A and delivered on node B in %s: %.0f events/s",
			sent.Load(), el.Round(time.Millisecond), float64(sent.Load())/el.Seconds())
		cancel()
		<-done
	})

	for _, tc := range []struct{ rate, subs int }{{1000, 1}, {1000, 100}, {1000, 1000}, {10000, 1}, {10000, 100}, {10000, 1000}} {
		rate, subs := tc.rate, tc.subs
		t.Run(fmt.Sprintf("latency-%d-x%d", rate, subs), func(t *testing.T) {
			coll := fmt.Sprintf("lat%d-%d", rate, subs)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var lat []time.Duration
			var delivered atomic.Int64
			var dones []chan struct{}
			for i := 0; i < subs; i++ {
				sample := i%50 == 0
				dones = append(dones, listen(t, ctx, b.WSURL(), tok, coll, func(n int, evs []syncgate.Event) {
					delivered.Add(int64(n))
					if !sample {
						return
					}
					now := time.Now()
					mu.Lock()
					for _, ev := range evs {
						var d struct{ Sent int64 }
						_ = json.Unmarshal(ev.Document, &d)
						lat = append(lat, now.Sub(time.Unix(0, d.Sent)))
					}
					mu.Unlock()
				}, sample))
			}
			perTick := rate / 100
			tick := time.NewTicker(10 * time.Millisecond)
			var sent int
			end := time.Now().Add(5 * time.Second)
			var wg sync.WaitGroup
			for now := range tick.C {
				if now.After(end) {
					break
				}
				evs := make([]syncgate.Event, perTick)
				for i := range evs {
					doc, _ := json.Marshal(map[string]int64{"Sent": time.Now().UnixNano()})
					evs[i] = syncgate.Event{Type: "insert", Project: "p1", Collection: coll, Document: doc}
				}
				sent += perTick
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, _, err := publish(a.URL, evs); err != nil {
						t.Error(err)
					}
				}()
			}
			tick.Stop()
			wg.Wait()
			want := int64(sent) * int64(subs)
			deadline := time.Now().Add(20 * time.Second)
			for delivered.Load() < want && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			slices.Sort(lat)
			p := func(q float64) time.Duration {
				if len(lat) == 0 {
					return 0
				}
				return lat[min(len(lat)-1, int(q*float64(len(lat))))].Round(10 * time.Microsecond)
			}
			slow := metricValue(b, "syncgate_slow_consumer_disconnects_total")
			t.Logf("latency at %d events/s × %d subscribers for 5 s: %d of %d deliveries (%.1f%%), p50 %s, p99 %s, max %s (%d samples), slow-consumer disconnects %.0f",
				rate, subs, delivered.Load(), want, 100*float64(delivered.Load())/float64(want), p(0.5), p(0.99), p(1), len(lat), slow)
			mu.Unlock()
			cancel()
			for _, d := range dones {
				<-d
			}
		})
	}
}

// listen subscribes one light client to p1/coll and calls fn for every
// events frame (decoding events only when decode is set).
func listen(t testing.TB, ctx context.Context, url, tok, coll string, fn func(n int, evs []syncgate.Event), decode bool) chan struct{} {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{"syncgate.v1"}, HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(64 << 20)
	sub, _ := json.Marshal(map[string]any{"op": "subscribe", "id": "1", "project": "p1", "collection": coll})
	if err := ws.Write(ctx, websocket.MessageText, sub); err != nil {
		t.Fatal(err)
	}
	subscribed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ws.CloseNow()
		once := false
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				if !once {
					close(subscribed)
				}
				return
			}
			var f struct {
				Op     string            `json:"op"`
				Events []json.RawMessage `json:"events"`
			}
			if !decode {
				// Count events cheaply: the op prefix and the number of
				// top-level "offset" fields.
				if len(data) > 12 && string(data[:12]) == `{"op":"event` {
					fn(countOffsets(data), nil)
				} else if !once && string(data[:min(len(data), 16)]) == `{"op":"subscribe` {
					once = true
					close(subscribed)
				}
				continue
			}
			if err := json.Unmarshal(data, &f); err != nil {
				return
			}
			switch f.Op {
			case "subscribed":
				if !once {
					once = true
					close(subscribed)
				}
			case "events":
				evs := make([]syncgate.Event, len(f.Events))
				for i, raw := range f.Events {
					_ = json.Unmarshal(raw, &evs[i])
				}
				fn(len(evs), evs)
			}
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed")
	}
	return done
}

func countOffsets(data []byte) int {
	n := 0
	for i := 0; i+9 <= len(data); i++ {
		if data[i] == '"' && string(data[i:i+9]) == `"offset":` {
			n++
		}
	}
	return n
}

func metricValue(n *wstest.Node, name string) float64 {
	mf, err := n.Metrics.Registry.Gather()
	if err != nil {
		return -1
	}
	for _, f := range mf {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
