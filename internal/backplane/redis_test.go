package backplane_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/redistest"
)

// recorder is a Receiver that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	events map[backplane.Stream][]syncgate.Event
	resets map[backplane.Stream][]string
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{events: map[backplane.Stream][]syncgate.Event{}, resets: map[backplane.Stream][]string{}, notify: make(chan struct{}, 1)}
}

func (r *recorder) Receive(s backplane.Stream, off backplane.Offset, ev *syncgate.Event) {
	if off.String() != ev.Offset {
		panic(fmt.Sprintf("Receive(%v, %v): event offset %q", s, off, ev.Offset))
	}
	r.mu.Lock()
	r.events[s] = append(r.events[s], *ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) Reset(s backplane.Stream, head backplane.Offset) {
	r.mu.Lock()
	r.resets[s] = append(r.resets[s], head.String())
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) get(s backplane.Stream) []syncgate.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]syncgate.Event(nil), r.events[s]...)
}

func (r *recorder) resetsOf(s backplane.Stream) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.resets[s]...)
}

// await polls cond until it holds or d passes.
func await(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startRedisBP(t testing.TB, url string, tune func(*backplane.RedisConfig)) (*backplane.Redis, *recorder) {
	t.Helper()
	cfg := backplane.RedisConfig{URL: url, Logger: quietLogger(), Metrics: metrics.New()}
	if tune != nil {
		tune(&cfg)
	}
	b, err := backplane.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	if err := b.Start(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, r
}

func ev(project, collection string, seq int) syncgate.Event {
	return syncgate.Event{Type: "document:updated", Project: project, Collection: collection, DocumentID: "d",
		Document: json.RawMessage(fmt.Sprint(seq)), Timestamp: time.Now().UTC()}
}

func seqOf(t testing.TB, e syncgate.Event) int {
	t.Helper()
	var n int
	if err := json.Unmarshal(e.Document, &n); err != nil {
		t.Fatalf("document %s: %v", e.Document, err)
	}
	return n
}

func TestRedisPublishSubscribeHistory(t *testing.T) {
	srv := redistest.Start(t)
	a, ra := startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) { c.HistorySize = 5 })
	b, _ := startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) { c.HistorySize = 5 })
	ctx := context.Background()
	coll := backplane.Stream{Project: "p1", Collection: "todos"}
	all := backplane.Stream{Project: "p1", Collection: syncgate.AllCollections}
	other := backplane.Stream{Project: "p1", Collection: "notes"}
	for _, s := range []backplane.Stream{coll, all, other} {
		if err := a.Subscribe(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	h0, err := a.History(ctx, coll, "", backplane.Page{})
	if err != nil || !h0.Recovered || len(h0.Events) != 0 {
		t.Fatalf("empty history: %+v %v", h0, err)
	}
	offs, err := b.Publish(ctx, []syncgate.Event{ev("p1", "todos", 1), ev("p1", "todos", 2), ev("p1", "notes", 3)})
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != 3 {
		t.Fatalf("offsets %v", offs)
	}
	await(t, 5*time.Second, "3 events on *", func() bool { return len(ra.get(all)) == 3 })
	await(t, 5*time.Second, "2 events on todos", func() bool { return len(ra.get(coll)) == 2 })
	got := ra.get(coll)
	if got[0].Offset != offs[0] || got[1].Offset != offs[1] || seqOf(t, got[1]) != 2 {
		t.Fatalf("collection events %+v, offsets %v", got, offs)
	}
	if n := ra.get(other); len(n) != 1 || n[0].Offset != offs[2] {
		t.Fatalf("notes events %+v", n)
	}
	allEv := ra.get(all)
	for i := 1; i < len(allEv); i++ {
		p, _ := backplane.ParseOffset(allEv[i-1].Offset)
		q, _ := backplane.ParseOffset(allEv[i].Offset)
		if !p.Less(q) {
			t.Fatalf("project stream offsets not increasing: %s, %s", allEv[i-1].Offset, allEv[i].Offset)
		}
	}

	// Resume inside history.
	h, err := b.History(ctx, coll, offs[0], backplane.Page{})
	if err != nil || !h.Recovered || len(h.Events) != 1 || h.Events[0].Offset != offs[1] || h.Head != offs[1] {
		t.Fatalf("history after first: %+v %v", h, err)
	}
	// At the head: recovered, nothing to replay.
	if h, err := b.History(ctx, coll, offs[1], backplane.Page{}); err != nil || !h.Recovered || len(h.Events) != 0 {
		t.Fatalf("history at head: %+v %v", h, err)
	}
	// Beyond history: 5 kept, 8 more published.
	for i := 0; i < 8; i++ {
		if _, err := b.Publish(ctx, []syncgate.Event{ev("p1", "todos", 10+i)}); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := b.History(ctx, coll, offs[0], backplane.Page{}); err != nil || h.Recovered || len(h.Events) != 0 {
		t.Fatalf("history beyond the kept 5: %+v %v", h, err)
	}
	// A bad or foreign offset.
	if _, err := b.History(ctx, coll, "garbage", backplane.Page{}); !errors.Is(err, backplane.ErrBadOffset) {
		t.Fatalf("bad offset: %v", err)
	}
	if h, err := b.History(ctx, coll, "m123:1-0", backplane.Page{}); err != nil || h.Recovered {
		t.Fatalf("offset of another epoch: %+v %v", h, err)
	}
	// Unsubscribe: no more delivery of notes.
	if err := a.Unsubscribe(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, []syncgate.Event{ev("p1", "notes", 99), ev("p1", "todos", 100)}); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "todos 100", func() bool { e := ra.get(coll); return seqOf(t, e[len(e)-1]) == 100 })
	if n := ra.get(other); len(n) != 1 {
		t.Fatalf("notes delivered after unsubscribe: %d", len(n))
	}
}

func TestRedisRejectsBadEventsAtomically(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startRedisBP(t, srv.URL(), nil)
	ctx := context.Background()
	// The function rejects the second event before writing the first.
	_, err := srv.Do("FCALL", "syncgate_publish", "1", "sg:{p1}:epoch",
		`{"type":"insert","project":"p1","collection":"c"}`, `{"type":"insert","project":"p2","collection":"c"}`)
	if err == nil || !strings.Contains(err.Error(), "event 2") {
		t.Fatalf("mismatched project: %v", err)
	}
	if n, _ := srv.Do("EXISTS", "sg:{p1}:s:c"); n != "0" {
		t.Fatalf("a rejected batch wrote its first event")
	}
	h, err := b.History(ctx, backplane.Stream{Project: "p1", Collection: "c"}, "", backplane.Page{})
	if err != nil || !strings.HasSuffix(h.Head, ":0-0") {
		t.Fatalf("head after rejected publish: %+v %v", h, err)
	}
	// A batch of two projects is one call on a single Redis.
	offs, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 1), ev("p2", "c", 2), ev("p1", "c", 3)})
	if err != nil || len(offs) != 3 {
		t.Fatalf("two-project batch: %v %v", offs, err)
	}
	for i, p := range []string{"p1", "p2", "p1"} {
		h, err := b.History(ctx, backplane.Stream{Project: p, Collection: "c"}, "", backplane.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if i != 0 && h.Head != offs[i] {
			t.Fatalf("%s head %s, want %s", p, h.Head, offs[i])
		}
	}
}

func TestRedisCLIPublish(t *testing.T) {
	srv := redistest.Start(t)
	b, r := startRedisBP(t, srv.URL(), nil)
	s := backplane.Stream{Project: "p1", Collection: "todos"}
	if err := b.Subscribe(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed")
	}
	// The call docs/redis.md shows.
	out, err := exec.Command(cli, "-p", fmt.Sprint(srv.Port), "FCALL", "syncgate_publish", "1", "sg:{p1}:epoch",
		`{"type":"document:created","project":"p1","collection":"todos","documentId":"t1","document":{"title":"Hello","n":12345678901234567890}}`).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ":") {
		t.Fatalf("redis-cli: %v %s", err, out)
	}
	off := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "1)"))
	off = strings.Trim(off, `"`)
	await(t, 5*time.Second, "the redis-cli event", func() bool { return len(r.get(s)) == 1 })
	e := r.get(s)[0]
	// The function's reply is the untagged form of the offset that
	// subscribers get (tagged with its stream).
	raw, err := backplane.ParseOffset(off)
	if err != nil {
		t.Fatal(err)
	}
	if e.Offset != raw.In(s).String() || e.DocumentID != "t1" || string(e.Document) != `{"title":"Hello","n":12345678901234567890}` {
		t.Fatalf("event %+v (offset %q)", e, off)
	}
	if time.Since(e.Timestamp) > time.Minute || time.Since(e.Timestamp) < 0 {
		t.Fatalf("timestamp set by the function: %v", e.Timestamp)
	}
}

func TestRedisUnavailableAndEpoch(t *testing.T) {
	srv := redistest.Start(t)
	b, r := startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) {
		c.ProbeInterval, c.ProbeTimeout = 200*time.Millisecond, 500*time.Millisecond
		c.ReconnectMin, c.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	})
	ctx := context.Background()
	s := backplane.Stream{Project: "p1", Collection: "todos"}
	if err := b.Subscribe(ctx, s); err != nil {
		t.Fatal(err)
	}
	offs, err := b.Publish(ctx, []syncgate.Event{ev("p1", "todos", 1)})
	if err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "first event", func() bool { return len(r.get(s)) == 1 })
	await(t, 5*time.Second, "ready", func() bool { return b.Ready() == nil })

	srv.Kill()
	start := time.Now()
	_, err = b.Publish(ctx, []syncgate.Event{ev("p1", "todos", 2)})
	if !errors.Is(err, backplane.ErrUnavailable) {
		t.Fatalf("publish with Redis down: %v", err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("publish with Redis down took %s", d)
	}
	await(t, 5*time.Second, "not ready", func() bool { return b.Ready() != nil })

	srv.Restart() // empty: new epoch, no library
	await(t, 10*time.Second, "ready again", func() bool { return b.Ready() == nil })
	// The gap cannot be filled: the subscription is reset to the new epoch.
	await(t, 10*time.Second, "reset", func() bool { return len(r.resetsOf(s)) > 0 })
	head := r.resetsOf(s)[0]
	if strings.Split(head, ":")[0] == strings.Split(offs[0], ":")[0] {
		t.Fatalf("reset head %s has the old epoch of %s", head, offs[0])
	}
	offs2, err := b.Publish(ctx, []syncgate.Event{ev("p1", "todos", 3)})
	if err != nil {
		t.Fatalf("publish after restart (reloads the library): %v", err)
	}
	await(t, 5*time.Second, "event after restart", func() bool { return len(r.get(s)) == 2 })
	if got := r.get(s)[1]; got.Offset != offs2[0] {
		t.Fatalf("event after restart %+v", got)
	}
	if h, err := b.History(ctx, s, offs[0], backplane.Page{}); err != nil || h.Recovered {
		t.Fatalf("resume from before the restart: %+v %v", h, err)
	}
}

func TestRedisStallProbe(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.StartProxy(t, srv.Addr())
	m := metrics.New()
	b, r := startRedisBP(t, proxy.URL(), func(c *backplane.RedisConfig) {
		c.Metrics = m
		c.ProbeInterval, c.ProbeTimeout = time.Second, 2*time.Second
	})
	pub, _ := startRedisBP(t, srv.URL(), nil)
	ctx := context.Background()
	s := backplane.Stream{Project: "p1", Collection: "todos"}
	if err := b.Subscribe(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, []syncgate.Event{ev("p1", "todos", 0)}); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "first event", func() bool { return len(r.get(s)) == 1 })
	await(t, 5*time.Second, "ready", func() bool { return b.Ready() == nil })

	n := proxy.Freeze(func(c redistest.ProxyConn) bool {
		return strings.Contains(strings.ToLower(string(c.FirstBytes)), "ssubscribe")
	})
	if n == 0 {
		t.Fatal("no pub/sub connection to freeze")
	}
	frozeAt := time.Now()
	// Publishing keeps working (commands are not frozen); subscribers get
	// nothing until the probe notices.
	for i := 1; i <= 20; i++ {
		if _, err := pub.Publish(ctx, []syncgate.Event{ev("p1", "todos", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("ready before detection should still be nil, got %v", err)
	}
	await(t, 10*time.Second, "stall detected", func() bool { return b.Ready() != nil })
	await(t, 10*time.Second, "all 21 events after recovery", func() bool { return len(r.get(s)) == 21 })
	await(t, 10*time.Second, "ready after recovery", func() bool { return b.Ready() == nil })
	if d := time.Since(frozeAt); d > 10*time.Second {
		t.Fatalf("detection and recovery took %s", d)
	}
	for i, e := range r.get(s) {
		if seqOf(t, e) != i {
			t.Fatalf("event %d has seq %d", i, seqOf(t, e))
		}
	}
	if testutilCount(m) < 1 {
		t.Fatal("stall not counted")
	}
	// Live delivery works on the rebuilt connection.
	if _, err := pub.Publish(ctx, []syncgate.Event{ev("p1", "todos", 21)}); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "live event after rebuild", func() bool { return len(r.get(s)) == 22 })
}

func testutilCount(m *metrics.Metrics) float64 {
	mf, _ := m.Registry.Gather()
	for _, f := range mf {
		if f.GetName() == "syncgate_backplane_stalls_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func TestRedisURLs(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"redis://127.0.0.1:6379", true},
		{"redis://:secret@127.0.0.1:6379/2", true},
		{"rediss://user:secret@redis.example.com:6380", true},
		{"redis+cluster://10.0.0.1:7000,10.0.0.2:7000", true},
		{"rediss+cluster://u:p@10.0.0.1:7000,10.0.0.2:7000?dial_timeout=3s", true},
		{"redis://10.0.0.1:7000,10.0.0.2:7000", true},
		{"redis+cluster://10.0.0.1:7000/3", false},
		{"http://127.0.0.1:6379", false},
		{"127.0.0.1:6379", false},
		{"redis://", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			cfg := backplane.RedisConfig{URL: tc.url}
			err := cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
	if err := (&backplane.RedisConfig{URL: "redis://x:1", ProbeTimeout: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "ProbeTimeout") {
		t.Fatalf("negative ProbeTimeout: %v", err)
	}
}

// TestRedisHistoryTTL: events older than HistoryTTL are trimmed at the next
// publish, and a resume from before them is not recovered; the stream key
// expires with the TTL.
func TestRedisHistoryTTL(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) { c.HistoryTTL = 500 * time.Millisecond })
	ctx := context.Background()
	s := backplane.Stream{Project: "p1", Collection: "ttl"}
	first, err := b.Publish(ctx, []syncgate.Event{ev("p1", "ttl", 0), ev("p1", "ttl", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := b.History(ctx, s, first[0], backplane.Page{}); err != nil || !h.Recovered || len(h.Events) != 1 {
		t.Fatalf("inside the TTL: %+v %v", h, err)
	}
	if pttl, err := srv.Do("PTTL", "sg:{p1}:s:ttl"); err != nil || pttl == "-1" || pttl == "-2" {
		t.Fatalf("stream PTTL %q %v", pttl, err)
	}
	var last string
	await(t, 5*time.Second, "the first events trimmed by age", func() bool {
		offs, err := b.Publish(ctx, []syncgate.Event{ev("p1", "ttl", 2)})
		if err != nil {
			t.Fatal(err)
		}
		last = offs[0]
		h, err := b.History(ctx, s, first[0], backplane.Page{})
		return err == nil && !h.Recovered
	})
	if h, err := b.History(ctx, s, last, backplane.Page{}); err != nil || !h.Recovered {
		t.Fatalf("resume from the newest event: %+v %v", h, err)
	}
}

// TestRedisPublishOutcome: a publish that surely did not reach Redis wraps
// ErrUnavailable (503, safe to retry); one whose reply was lost wraps
// context.DeadlineExceeded and not ErrUnavailable (504: it ran here).
func TestRedisPublishOutcome(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.StartProxy(t, srv.Addr())
	b, _ := startRedisBP(t, proxy.URL(), func(c *backplane.RedisConfig) { c.PublishTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	s := backplane.Stream{Project: "p1", Collection: "c"}
	if _, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 0)}); err != nil {
		t.Fatal(err)
	}
	proxy.Freeze(func(redistest.ProxyConn) bool { return true })
	_, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 1)})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backplane.ErrUnavailable) {
		t.Fatalf("publish with the reply lost: %v", err)
	}
	// It did run.
	direct, _ := startRedisBP(t, srv.URL(), nil)
	h, err := direct.History(ctx, s, "", backplane.Page{})
	if err != nil {
		t.Fatal(err)
	}
	epoch, _, _ := strings.Cut(h.Head, ":")
	if h2, err := direct.History(ctx, s, epoch+":0-0", backplane.Page{}); err != nil || len(h2.Events) != 2 {
		t.Fatalf("history after the lost reply: %+v %v", h2, err)
	}
	proxy.Close()
	srv.Kill()
	_, err = direct.Publish(ctx, []syncgate.Event{ev("p1", "c", 2)})
	if !errors.Is(err, backplane.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish with Redis down: %v", err)
	}
}
