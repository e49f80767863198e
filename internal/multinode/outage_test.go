package multinode

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestRedisOutage kills Redis for 3 s while two nodes publish and serve
// subscribers. Publishes during the outage answer 503; client sockets stay
// open; every event acknowledged with 200 reaches every subscriber once and
// in order, unless the subscriber was told with recovered:false (only
// possible when Redis came back without its data). goleak in TestMain
// checks that nothing leaked.
func TestRedisOutage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		persist bool
	}{{"persistent", true}, {"in-memory", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *redistest.Server
			if tc.persist {
				srv = redistest.StartPersistent(t)
			} else {
				srv = redistest.Start(t)
			}
			nodes := startNodes(t, srv.URL(), 2, fastProbe)
			tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
			type sub struct {
				name string
				c    *wstest.Client
			}
			var subs []sub
			for i, n := range nodes {
				for _, coll := range []string{"c", "*"} {
					c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
					c.Subscribe("1", "p1", coll, "")
					subs = append(subs, sub{n.URL + "/" + coll, c})
					_ = i
				}
			}

			var (
				mu        sync.Mutex
				acked     = map[int]bool{}
				status503 int
				status504 int
			)
			stop := make(chan struct{})
			done := make(chan error, 1)
			next := 0
			go func() {
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						done <- nil
						return
					case <-tick.C:
					}
					status, _, err := publish(nodes[i%2].URL, []syncgate.Event{seqEvent("p1", "c", 0, i, nil)})
					mu.Lock()
					next = i + 1
					switch {
					case err == nil:
						acked[i] = true
					case status == http.StatusServiceUnavailable:
						status503++
					case status == http.StatusGatewayTimeout:
						// Cut off after it reached Redis: the outcome is
						// unknown, so it is neither acknowledged nor lost.
						status504++
					default:
						mu.Unlock()
						done <- err
						return
					}
					mu.Unlock()
				}
			}()
			ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
			await(t, 10*time.Second, "publishing before the outage", func() bool { return ackedCount() >= 50 })
			srv.Kill()
			outage := time.NewTimer(3 * time.Second)
			await(t, 10*time.Second, "nodes not ready", func() bool {
				for _, n := range nodes {
					if n.BP.(backplane.Checker).Ready() == nil {
						return false
					}
				}
				return true
			})
			for _, n := range nodes {
				if code := readyz(t, n.URL); code != http.StatusServiceUnavailable {
					t.Fatalf("/readyz during the outage: %d", code)
				}
			}
			<-outage.C // the scenario: Redis stays down for 3 s
			srv.Restart()
			for _, n := range nodes {
				await(t, 15*time.Second, "ready after the outage", func() bool { return n.BP.(backplane.Checker).Ready() == nil })
			}
			for _, n := range nodes {
				if code := readyz(t, n.URL); code != http.StatusOK {
					t.Fatalf("/readyz after the outage: %d", code)
				}
			}
			n0 := ackedCount()
			await(t, 10*time.Second, "publishing after the outage", func() bool { return ackedCount() >= n0+50 })
			close(stop)
			if err := <-done; err != nil {
				t.Fatalf("publisher: %v", err)
			}
			mu.Lock()
			last := next
			marker := last
			mu.Unlock()
			if _, _, err := publish(nodes[0].URL, []syncgate.Event{seqEvent("p1", "c", 0, marker, nil)}); err != nil {
				t.Fatal(err)
			}
			acked[marker] = true
			if status503 == 0 {
				t.Fatal("no publish answered 503 during the outage")
			}

			for _, s := range subs {
				lastSeq, told, resets := -1, false, 0
				for lastSeq < marker {
					f := s.c.Next()
					switch f.Op {
					case "subscribed":
						if f.Recovered {
							t.Fatalf("%s: subscribed with recovered:true mid-stream", s.name)
						}
						told = true
						resets++
					case "events":
						for _, ev := range f.Events {
							seq := docOf(t, ev).Seq
							if seq <= lastSeq {
								t.Fatalf("%s: seq %d after %d (duplicate or out of order)", s.name, seq, lastSeq)
							}
							for m := lastSeq + 1; m < seq; m++ {
								if acked[m] && !told {
									t.Fatalf("%s: acknowledged event %d never arrived and the client was not told", s.name, m)
								}
							}
							lastSeq, told = seq, false
						}
					default:
						t.Fatalf("%s: unexpected frame %s", s.name, f.Raw)
					}
				}
				if tc.persist && resets > 0 {
					t.Fatalf("%s: Redis kept its data, yet the client got recovered:false", s.name)
				}
				t.Logf("%s: %d resets", s.name, resets)
			}
			t.Logf("%d events acknowledged, %d publishes answered 503, %d 504", len(acked), status503, status504)
		})
	}
}

func readyz(t testing.TB, base string) int {
	t.Helper()
	resp, err := httpClient.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrainDuringOutage: SIGTERM while Redis is down. Closing the clients
// ends their subscriptions without waiting for the pub/sub connection's
// redial one by one, so the drain finishes within its grace.
func TestDrainDuringOutage(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 1, func(c *backplane.RedisConfig) {
		fastProbe(c)
		c.SubscribeTimeout = time.Second
		c.ReconnectMax = 5 * time.Second
	})
	n := nodes[0]
	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
	for range 4 {
		c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
		for j, coll := range []string{"a", "b", "c"} {
			if f := c.Subscribe(string(rune('1'+j)), "p1", coll, ""); f.Op != "subscribed" {
				t.Fatalf("subscribe: %s", f.Raw)
			}
		}
	}
	srv.Kill()
	await(t, 5*time.Second, "not ready", func() bool { return n.BP.(backplane.Checker).Ready() != nil })
	const grace = time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), grace+2*time.Second)
	defer cancel()
	if err := n.Hub.Drain(ctx, grace); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if d := time.Since(start); d > grace+2*time.Second {
		t.Fatalf("drain of 4 clients × 3 subscriptions during the outage took %s", d)
	}
}
