package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redisfn"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
	"github.com/syncgate/syncgate/publisher"
	"github.com/syncgate/syncgate/publisher/redispub"
)

// redisNode starts redis-server and a gateway node on its Redis backplane.
func redisNode(t *testing.T) (*redistest.Server, *wstest.Node) {
	t.Helper()
	srv := redistest.Start(t)
	bp, err := backplane.NewRedis(backplane.RedisConfig{URL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return srv, wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
}

func redisClient(t testing.TB, addr string, mod func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: addr, MaxRetries: -1}
	if mod != nil {
		mod(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func newRedisPublisher(t testing.TB, rdb redis.UniversalClient) *publisher.Publisher {
	t.Helper()
	p, err := redispub.New(rdb, redispub.Config{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Both transports give a subscribed client the same events.
func TestTransportsDeliverTheSame(t *testing.T) {
	srv, n := redisNode(t)
	c := subscriber(t, n, "p1", "rows")
	all := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "u2", time.Hour, []string{"p1"}, nil, nil)})
	all.Subscribe("all", "p1", "*", "")
	httpP, _ := newPublisher(t, n.URL, wstest.Key, nil)
	redisP := newRedisPublisher(t, redisClient(t, srv.Addr(), nil))
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)

	script := func(p *publisher.Publisher) []string {
		ctx := context.Background()
		at := publisher.WithTimestamp(ts)
		var offs []string
		add := func(off string, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			offs = append(offs, off)
		}
		add(p.DocumentCreated(ctx, "p1", "rows", "d1", "user-42", map[string]string{"title": "Draft"}, at))
		add(p.DocumentUpdated(ctx, "p1", "rows", "d1", "user-42", map[string]string{"title": "Launch"}, map[string]string{"title": "Draft"}, at))
		add(p.Update(ctx, "p1", "rows", "7", map[string]int{"n": 2}, map[string]int{"n": 1}, at, publisher.WithAudience([]string{"u1", "u2"}, nil)))
		add(p.DocumentDeleted(ctx, "p1", "rows", "d1", "user-42", at))
		batch := []syncgate.Event{seqEvent("p1", "rows", 0, 1), seqEvent("p1", "rows", 0, 2)}
		batch[0].Timestamp, batch[1].Timestamp = ts, ts
		o, err := p.Publish(ctx, batch...)
		if err != nil {
			t.Fatal(err)
		}
		return append(offs, o...)
	}
	viaHTTP := script(httpP)
	viaRedis := script(redisP)
	got := c.Events(2 * len(viaHTTP))
	gotAll := all.Events(2 * len(viaHTTP))
	for i := range viaHTTP {
		h, r := got[i], got[len(viaHTTP)+i]
		if h.Offset != viaHTTP[i] || r.Offset != viaRedis[i] {
			t.Errorf("event %d: delivered offsets %s, %s; returned %s, %s", i, h.Offset, r.Offset, viaHTTP[i], viaRedis[i])
		}
		h.Offset, r.Offset = "", ""
		hj, _ := json.Marshal(h)
		rj, _ := json.Marshal(r)
		if string(hj) != string(rj) {
			t.Errorf("event %d differs:\n http:  %s\n redis: %s", i, hj, rj)
		}
	}
	prev := backplane.Offset{}
	for i, ev := range gotAll {
		o, err := backplane.ParseOffset(ev.Offset)
		if err != nil || (i > 0 && !prev.Less(o)) {
			t.Fatalf("project stream offset %d: %s after %s (%v)", i, ev.Offset, prev, err)
		}
		prev = o
	}

	// Client-side validation is the same on both.
	bad := syncgate.Event{Type: "insert", Project: "p1", Collection: "bad name"}
	_, e1 := httpP.Publish(context.Background(), bad)
	_, e2 := redisP.Publish(context.Background(), bad)
	if e1 == nil || e2 == nil || e1.Error() != e2.Error() {
		t.Errorf("http: %v\nredis: %v", e1, e2)
	}
}

// A reply lost after Redis ran the function is uncertain and not retried;
// the event was in fact published.
func TestRedisLostReplyIsUncertain(t *testing.T) {
	srv, n := redisNode(t)
	c := subscriber(t, n, "p1", "rows")
	proxy := redistest.StartProxy(t, srv.Addr())
	p := newRedisPublisher(t, redisClient(t, proxy.Addr, func(o *redis.Options) { o.ReadTimeout = 300 * time.Millisecond }))
	if _, err := p.Publish(context.Background(), seqEvent("p1", "rows", 0, 0)); err != nil {
		t.Fatal(err)
	}
	c.Events(1)
	if proxy.Freeze(func(redistest.ProxyConn) bool { return true }) == 0 {
		t.Fatal("no connection to freeze")
	}
	_, err := p.Publish(context.Background(), seqEvent("p1", "rows", 0, 1))
	if !errors.Is(err, publisher.ErrUncertain) {
		t.Fatalf("got %v, want ErrUncertain", err)
	}
	if ev := c.Events(1)[0]; ev.DocumentID != "w0-1" {
		t.Errorf("delivered %+v", ev)
	}
}

// Redis down: the call certainly did not run; retried, then ErrUnavailable.
func TestRedisDownIsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	p := newRedisPublisher(t, redisClient(t, srv.Addr(), nil))
	if _, err := p.Publish(context.Background(), seqEvent("p1", "rows", 0, 0)); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	_, err := p.Publish(context.Background(), seqEvent("p1", "rows", 0, 1))
	var pe *publisher.Error
	if !errors.As(err, &pe) || pe.Code != "unavailable" || !errors.Is(err, publisher.ErrUnavailable) || errors.Is(err, publisher.ErrUncertain) {
		t.Fatalf("got %v, want unavailable without ErrUncertain", err)
	}
}

// The redis-cli call documented in docs/publishing.md works as written.
func TestRedisCLIExample(t *testing.T) {
	srv, n := redisNode(t)
	c := subscriber(t, n, "p1", "events")
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skipf("redis-cli not installed: %v", err)
	}
	// Keep in sync with docs/publishing.md.
	out, err := exec.Command(cli, "-u", srv.URL(), "FCALL", "syncgate_publish", "1", "sg:{p1}:epoch",
		`{"type":"document:updated","project":"p1","collection":"events","documentId":"event-123","document":{"title":"Launch"},"actor":"user-42"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v: %s", err, out)
	}
	ev := c.Events(1)[0]
	if redisfn.TagOffset(strings.TrimSpace(string(out)), "p1", "events") != ev.Offset || ev.DocumentID != "event-123" || string(ev.Document) != `{"title":"Launch"}` || ev.Timestamp.IsZero() {
		t.Errorf("redis-cli printed %q; delivered %+v", out, ev)
	}
}
