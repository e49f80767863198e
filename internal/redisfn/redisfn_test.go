package redisfn_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/redisfn"
	"github.com/syncgate/syncgate/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSourceUnchanged pins the rendered source of library version 5 by
// SHA-256, so that no edit of syncgate.lua reaches Redis under a version
// that already names another source: change the sums only together with
// LibraryVersion. (Version 4 rendered 4d86983f… for the first case; 5's
// age trim looks for an entry older than the TTL forwards before reading
// the newest of them backwards, which walked the whole stream on every
// publish.)
func TestSourceUnchanged(t *testing.T) {
	for _, c := range []struct {
		size  int
		ttl   time.Duration
		owner redisfn.Owner
		sum   string
	}{
		{1000, 24 * time.Hour, redisfn.OwnerGateway, "d2351024ade1d5c6fb7cdd002aa61c5c7302cb36538d9422726396626c21c7a0"},
		{0, time.Millisecond, redisfn.OwnerPublisher, "c761202fd773ad1db38ca5966d1d187c3b65adfe0c2c258cd59d5696a851c9b5"},
		{-5, 90 * time.Minute, redisfn.OwnerGateway, "f2179ffb1c3a893c5c542bdde023bd2978db024fa6d8a9e9d515ec49b6a9f7d0"},
		{123456, 1500 * time.Millisecond, redisfn.OwnerPublisher, "febf737d0325502c6297f304cffb05b4d2effa1688fdebfc911017bb32a37a37"},
	} {
		// The old renderer took the size as is (0 rendered 0, negative 0):
		// Source applies defaults for 0, so pass what the old caller passed.
		l := redisfn.Limits{HistorySize: c.size, HistoryTTL: c.ttl}
		if c.size == 0 {
			l.HistorySize = -1
		}
		src := redisfn.Source(l, c.owner)
		sum := sha256.Sum256([]byte(src))
		if got := hex.EncodeToString(sum[:]); got != c.sum {
			t.Errorf("Source(%+v, %s): sha256 %s, want %s", l, c.owner, got, c.sum)
		}
		if strings.Contains(src, "{{") {
			t.Errorf("Source(%+v) left a placeholder", l)
		}
	}
}

func TestSourceDefaults(t *testing.T) {
	src := redisfn.Source(redisfn.Limits{}, "anything")
	for _, want := range []string{"local MAXLEN = 1000\n", "local TTL_MS = 86400000\n", "local OWNER = 'publisher'\n", "local VERSION = '" + redisfn.LibraryVersion + "'\n"} {
		if !strings.Contains(src, want) {
			t.Errorf("source lacks %q", want)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, c := range []struct {
		l    redisfn.Limits
		want string
	}{
		{redisfn.Limits{}, ""},
		{redisfn.Limits{HistorySize: -1, HistoryTTL: time.Millisecond}, ""},
		{redisfn.Limits{HistoryTTL: -time.Second}, "HistoryTTL=-1s"},
		{redisfn.Limits{HistoryTTL: time.Microsecond}, "HistoryTTL=1µs"},
	} {
		err := c.l.Validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.l, err, c.want)
		}
	}
}

// redisErr is a Redis error reply, as go-redis returns them.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, c := range []struct {
		name            string
		err             error
		notSent, mayRun bool
		invalid         bool
	}{
		{"dial", dial, true, false, false},
		{"pool timeout", redis.ErrPoolTimeout, true, false, false},
		{"closed", redis.ErrClosed, true, false, false},
		{"LOADING", redisErr("LOADING Redis is loading the dataset in memory"), true, false, false},
		{"MOVED", redisErr("MOVED 3999 127.0.0.1:6381"), true, false, false},
		{"ASK", redisErr("ASK 3999 127.0.0.1:6381"), true, false, false},
		{"BUSY", redisErr("BUSY Redis is busy running a script"), true, false, false},
		{"READONLY", redisErr("READONLY You can't write against a read only replica."), true, false, false},
		{"not a refusal prefix", redisErr("ASKED for it"), false, false, false},
		{"function refusal", redisErr("ERR syncgate: event 1: type must match"), false, false, true},
		{"other reply", redisErr("ERR Function not found"), false, false, false},
		{"read reset", read, false, true, false},
		{"deadline", context.DeadlineExceeded, false, true, false},
		{"canceled", context.Canceled, false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := redisfn.Classify("op", c.err)
			if !errors.Is(err, c.err) {
				t.Errorf("%v lost its cause", err)
			}
			if got := errors.Is(err, redisfn.ErrNotSent); got != c.notSent {
				t.Errorf("%v: ErrNotSent %v, want %v", err, got, c.notSent)
			}
			if got := errors.Is(err, redisfn.ErrMayHaveRun); got != c.mayRun {
				t.Errorf("%v: ErrMayHaveRun %v, want %v", err, got, c.mayRun)
			}
			if got := errors.Is(err, syncgate.ErrInvalidEvent); got != c.invalid {
				t.Errorf("%v: ErrInvalidEvent %v, want %v", err, got, c.invalid)
			}
			if !strings.HasPrefix(err.Error(), "op: ") {
				t.Errorf("%v does not name the operation", err)
			}
		})
	}
	if redisfn.Classify("op", nil) != nil {
		t.Error("Classify(nil) is not nil")
	}
}

func TestChannelNames(t *testing.T) {
	for _, s := range [][2]string{{"p1", "todos"}, {"p-1_x", "*"}, {"P", "a.b-c_d"}} {
		p, c, ok := redisfn.StreamOfChannel(redisfn.ChannelName(s[0], s[1]))
		if !ok || p != s[0] || c != s[1] {
			t.Fatalf("%v → %s → %s %s %v", s, redisfn.ChannelName(s[0], s[1]), p, c, ok)
		}
	}
	if _, _, ok := redisfn.StreamOfChannel(redisfn.ProbeChannel("node", "abc")); ok {
		t.Fatal("a probe channel parsed as a stream channel")
	}
}

func TestTagOffset(t *testing.T) {
	tag := redisfn.StreamTag("p", "c")
	for _, c := range [][2]string{
		{"1796:1796-0", "1796t" + tag + ":1796-0"},
		{"1796t" + tag + ":1-0", "1796t" + tag + ":1-0"},
		{"", ""},
		{"x:y", "x:y"},
	} {
		if got := redisfn.TagOffset(c[0], "p", "c"); got != c[1] {
			t.Errorf("TagOffset(%q) = %q, want %q", c[0], got, c[1])
		}
	}
	if len(tag) != redisfn.TagLen || redisfn.StreamTag("p", "d") == tag {
		t.Errorf("tag %q", tag)
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		raw     string
		cluster bool
		addrs   int
		bad     string
	}{
		{raw: "redis://127.0.0.1:6379", addrs: 1},
		{raw: "rediss://u:pw@h/2", addrs: 1},
		{raw: "redis+cluster://a:1,b:2", cluster: true, addrs: 2},
		{raw: "redis://a,b,c", cluster: true, addrs: 3},
		{raw: "http://x", bad: "scheme must be"},
		{raw: "redis://", bad: "no host"},
		{raw: "redis+cluster://a:1/3", bad: "only database 0"},
		{raw: "localhost:6379", bad: "want redis://"},
	} {
		tg, err := redisfn.ParseURL(c.raw)
		if c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("%s: %v, want %q", c.raw, err, c.bad)
			}
			continue
		}
		switch {
		case err != nil:
			t.Errorf("%s: %v", c.raw, err)
		case c.cluster && (tg.Cluster == nil || len(tg.Cluster.Addrs) != c.addrs):
			t.Errorf("%s: %+v, want a cluster of %d", c.raw, tg, c.addrs)
		case !c.cluster && tg.Single == nil:
			t.Errorf("%s: not a single Redis", c.raw)
		}
	}
	o, _ := redisfn.Target{Single: &redis.Options{Addr: "x:1"}}.CommandOptions()
	if o.MaxRetries != -1 || !o.ContextTimeoutEnabled || o.DialerRetries != 1 {
		t.Errorf("command options %+v retry or ignore deadlines", o)
	}
}

// FuzzParseURL: no URL panics the parser, and errors never show a
// password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379", "rediss://u:hunter2@h:1/2", "redis+cluster://a:1,b:2", "redis://a,b,c",
		"redis://:hunter2@", "rediss+cluster://u:hunter2@a:1,b:2/5", "redis://[::1]:6379",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := redisfn.ParseURL(raw)
		if err != nil && strings.Contains(raw, ":hunter2@") && strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error shows the password: %v", err)
		}
	})
}

// TestCalls runs the library on a real redis-server: a publish on a Redis
// without it installs it (as a publisher's), history reads back what was
// published, and a Redis that is gone fails as not sent.
func TestCalls(t *testing.T) {
	srv := redistest.Start(t)
	tg, err := redisfn.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := tg.CommandClient()
	defer rdb.Close()
	ctx := context.Background()
	lim := redisfn.Limits{HistorySize: 2, HistoryTTL: time.Hour}
	if _, err := redisfn.InstalledOn(ctx, rdb); !redisfn.IsFunctionMissing(err) {
		t.Fatalf("fresh Redis: %v, want function missing", err)
	}
	evs := []syncgate.Event{
		{Type: "insert", Project: "p", Collection: "c", DocumentID: "1"},
		{Type: "insert", Project: "p", Collection: "c", DocumentID: "2"},
		{Type: "insert", Project: "p", Collection: "d", DocumentID: "3"},
	}
	enc, err := redisfn.Encode(evs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	offs, err := redisfn.Publish(ctx, rdb, enc, nil, redisfn.PublisherLoader(rdb, lim))
	if err != nil || len(offs) != 3 {
		t.Fatalf("publish: %v %v", offs, err)
	}
	if !strings.Contains(offs[0], "t"+redisfn.StreamTag("p", "c")+":") || !strings.Contains(offs[2], "t"+redisfn.StreamTag("p", "d")+":") {
		t.Errorf("offsets %v are not tagged with their streams", offs)
	}
	in, err := redisfn.InstalledOn(ctx, rdb)
	if err != nil || in.Owner != redisfn.OwnerPublisher || !in.Matches(lim) || in.Matches(redisfn.Limits{}) {
		t.Errorf("installed %+v, %v; want the publisher's limits %+v", in, err, lim)
	}
	if err := redisfn.CheckVersion(ctx, rdb); err != nil {
		t.Errorf("CheckVersion: %v", err)
	}
	// A publisher keeps an installed library; a gateway replaces it.
	if err := redisfn.Load(ctx, rdb, redisfn.Limits{}, redisfn.OwnerPublisher, false); err != nil {
		t.Fatal(err)
	}
	if in, _ := redisfn.InstalledOn(ctx, rdb); !in.Matches(lim) {
		t.Errorf("a publisher's load replaced the library: %+v", in)
	}
	if err := redisfn.Load(ctx, rdb, redisfn.Limits{}, redisfn.OwnerGateway, true); err != nil {
		t.Fatal(err)
	}
	if in, _ := redisfn.InstalledOn(ctx, rdb); in.Owner != redisfn.OwnerGateway || !in.Matches(redisfn.Limits{}) {
		t.Errorf("a gateway's load kept the old library: %+v", in)
	}

	epoch, id, _ := strings.Cut(offs[0], ":")
	epoch, _, _ = strings.Cut(epoch, "t")
	h, err := redisfn.History(ctx, rdb, redisfn.HistoryRequest{Project: "p", Collection: "c", SinceEpoch: epoch, SinceID: id, MaxEvents: 10, MaxBytes: 1 << 20}, nil)
	if err != nil || !h.Recovered || h.More || len(h.Entries) != 1 || h.Epoch != epoch || !strings.Contains(h.Entries[0].JSON, `"documentId":"2"`) {
		t.Fatalf("history after the first event: %+v, %v", h, err)
	}
	_, err = redisfn.Publish(ctx, rdb, []redisfn.Encoded{{Project: "p", Collection: "c", JSON: []byte(`{"type":"x"}`)}}, nil, nil)
	if !errors.Is(err, syncgate.ErrInvalidEvent) {
		t.Errorf("a refused event: %v, want ErrInvalidEvent", err)
	}

	srv.Kill()
	_, err = redisfn.Publish(ctx, rdb, enc, nil, nil)
	if !errors.Is(err, redisfn.ErrNotSent) || errors.Is(err, redisfn.ErrMayHaveRun) {
		t.Errorf("publish to a killed Redis: %v, want ErrNotSent", err)
	}
}

// TestAgeTrim: a publish drops the entries older than the TTL and records
// the newest of them in the trimmed hash (what resume compares with), and
// keeps a stream whose entries are all younger as it is.
func TestAgeTrim(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	publish := func(lim redisfn.Limits, ids ...string) []string {
		t.Helper()
		var evs []syncgate.Event
		for _, id := range ids {
			evs = append(evs, syncgate.Event{Type: "insert", Project: "p", Collection: "c", DocumentID: id})
		}
		enc, err := redisfn.Encode(evs, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		offs, err := redisfn.Publish(ctx, rdb, enc, nil, redisfn.PublisherLoader(rdb, lim))
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range offs {
			_, id, _ := strings.Cut(o, ":")
			offs[i] = id
		}
		return offs
	}
	hour := redisfn.Limits{HistorySize: 100, HistoryTTL: time.Hour}
	publish(hour, "1", "2")
	publish(hour, "3")
	if n, err := rdb.XLen(ctx, "sg:{p}:s:c").Result(); err != nil || n != 3 {
		t.Fatalf("inside the TTL: %d entries, %v; want 3", n, err)
	}
	if n, err := rdb.Exists(ctx, "sg:{p}:trimmed").Result(); err != nil || n != 0 {
		t.Fatalf("inside the TTL the trimmed hash exists (%d, %v)", n, err)
	}
	// With a TTL of 1 ms, every entry of an earlier millisecond goes.
	ms := redisfn.Limits{HistorySize: 100, HistoryTTL: time.Millisecond}
	if err := redisfn.Load(ctx, rdb, ms, redisfn.OwnerGateway, true); err != nil {
		t.Fatal(err)
	}
	old, err := rdb.XRevRangeN(ctx, "sg:{p}:s:c", "+", "-", 1).Result()
	if err != nil || len(old) != 1 {
		t.Fatalf("newest entry: %v %v", old, err)
	}
	var last string
	await(t, 5*time.Second, "the entries of earlier milliseconds trimmed", func() bool {
		last = publish(ms, "4")[0]
		n, err := rdb.XLen(ctx, "sg:{p}:s:c").Result()
		return err == nil && n == 1
	})
	if got, err := rdb.XRange(ctx, "sg:{p}:s:c", "-", "+").Result(); err != nil || len(got) != 1 || got[0].ID != last {
		t.Fatalf("after the trim: %v %v, want only %s", got, err, last)
	}
	// The mark is the newest entry that went: the third one, or a "4"
	// published before the trim took, never the one kept.
	got, err := rdb.HGet(ctx, "sg:{p}:trimmed", "c").Result()
	if err != nil || idLess(got, old[0].ID) || !idLess(got, last) {
		t.Fatalf("trimmed mark %q (%v): want from %s to before %s", got, err, old[0].ID, last)
	}
}

// idLess orders two stream ids ms-seq.
func idLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		return x < y
	}
	i, _ := strconv.ParseUint(as, 10, 64)
	j, _ := strconv.ParseUint(bs, 10, 64)
	return i < j
}

// await polls cond every millisecond until it holds, failing after d.
func await(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}
