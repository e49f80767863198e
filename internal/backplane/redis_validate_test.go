package backplane_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/redisfn"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/testlog"
)

// TestRedisFunctionRefusesWhatGoCannotDecode publishes raw JSON with FCALL,
// as a publisher in any language does. Whatever the function accepts, the
// gateway must decode (an event it could not decode would be a silent gap
// for every subscriber); everything else is refused with a clear error.
func TestRedisFunctionRefusesWhatGoCannotDecode(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startRedisBP(t, srv.URL(), nil)
	const head = `{"type":"insert","project":"p1","collection":"c"`
	bad := map[string]string{
		"documentId number":        head + `,"documentId":42}`,
		"documentId too long":      head + `,"documentId":"` + strings.Repeat("x", 257) + `"}`,
		"actor object":             head + `,"actor":{"id":1}}`,
		"timestamp words":          head + `,"timestamp":"yesterday"}`,
		"timestamp number":         head + `,"timestamp":1700000000}`,
		"timestamp lowercase t":    head + `,"timestamp":"2026-11-22t10:00:00Z"}`,
		"timestamp Feb 30":         head + `,"timestamp":"2026-02-30T10:00:00Z"}`,
		"timestamp hour 24":        head + `,"timestamp":"2026-11-22T24:00:00Z"}`,
		"timestamp escaped":        head + `,"timestamp":"2026-11-22T10:00:00\u005a"}`,
		"timestamp no zone":        head + `,"timestamp":"2026-11-22T10:00:00"}`,
		"audience users string":    head + `,"audience":{"users":"u"}}`,
		"audience users object":    head + `,"audience":{"users":{},"roles":["r"]}}`,
		"audience number in list":  head + `,"audience":{"users":["u",1]}}`,
		"audience empty":           head + `,"audience":{}}`,
		"audience array":           head + `,"audience":["u"]}`,
		"audience unknown field":   head + `,"audience":{"Users":["u"]}}`,
		"audience null":            head + `,"audience":null}`,
		"unknown field":            head + `,"colour":"red"}`,
		"case-folded field":        head + `,"documentID":"d"}`,
		"duplicate field":          `{"type":"insert","project":"p1","collection":"c","documentId":42,"documentId":"d"}`,
		"offset":                   head + `,"offset":"x"}`,
		"hex number":               head + `,"document":0x10}`,
		"leading zero":             head + `,"document":{"n":01}}`,
		"plus sign":                head + `,"document":+1}`,
		"trailing dot":             head + `,"document":1.}`,
		"nan":                      head + `,"document":nan}`,
		"control character":        head + `,"document":"a` + "\x01" + `b"}`,
		"trailing data":            head + `} {}`,
		"vertical tab":             "\v" + head + `}`,
		"invalid UTF-8 documentId": head + `,"documentId":"d` + "\xff" + `"}`,
		"invalid UTF-8 document":   head + `,"document":{"t":"` + "\xe2\x82" + `"}}`,
		"overlong UTF-8":           head + `,"actor":"` + "\xc0\xaf" + `"}`,
		"UTF-8 surrogate":          head + `,"actor":"` + "\xed\xa0\x80" + `"}`,
		"UTF-8 past U+10FFFF":      head + `,"actor":"` + "\xf4\x90\x80\x80" + `"}`,
	}
	for name, raw := range bad {
		_, err := srv.Do("FCALL", "syncgate_publish", "1", "sg:{p1}:epoch", raw)
		if err == nil || !strings.Contains(err.Error(), "syncgate: event 1: ") {
			t.Errorf("%s: %s: want a syncgate error, got %v", name, raw, err)
		}
	}
	if n, _ := srv.Do("EXISTS", "sg:{p1}:s:c"); n != "0" {
		t.Fatalf("a refused event was written")
	}

	good := []string{
		head + `}`,
		head + `,"documentId":"d","actor":"a","document":{"n":-0.5e+3,"s":"\u00e9\n","a":[true,false,null],"o":{}},"oldDocument":null}`,
		head + `,"timestamp":"2024-02-29T23:59:59.123456789+05:30","audience":{"users":["u"],"roles":[]}}`,
		head + `,"timestamp":"2026-11-22T10:00:00Z","audience":{"roles":["admin"]}}`,
		" \n" + head + ` , "document" : [ 1 , 2 ] } `,
		head + `,"documentId":"é 日本 😀","document":"` + "\u007f\U0010FFFF" + `"}`,
	}
	for _, raw := range good {
		if _, err := srv.Do("FCALL", "syncgate_publish", "1", "sg:{p1}:epoch", raw); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		// Whatever the function takes, the gateway's strict decoder takes too.
		ev, err := syncgate.DecodeEvent([]byte(raw))
		if err == nil {
			err = ev.Validate()
		}
		if err != nil {
			t.Fatalf("accepted by the function but not by Go: %s: %v", raw, err)
		}
	}
	h, err := b.History(context.Background(), backplane.Stream{Project: "p1", Collection: "c"}, "", backplane.Page{})
	if err != nil {
		t.Fatal(err)
	}
	first := strings.Split(h.Head, ":")[0] + ":0-0"
	h, err = b.History(context.Background(), backplane.Stream{Project: "p1", Collection: "c"}, first, backplane.Page{})
	if err != nil || !h.Recovered || len(h.Events) != len(good) {
		t.Fatalf("history of the accepted events: %d events, recovered %v, %v", len(h.Events), h.Recovered, err)
	}
}

// TestRedisUndecodableEntry: an entry the gateway cannot decode (written
// around the function, or by an older one) is never skipped silently: live,
// subscribers are reset past it; in history, the resume is not recovered.
// Both count as dropped, reason "invalid".
func TestRedisUndecodableEntry(t *testing.T) {
	srv := redistest.Start(t)
	m := metrics.New()
	b, r := startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) { c.Metrics = m })
	ctx := context.Background()
	s := backplane.Stream{Project: "p1", Collection: "c"}
	if err := b.Subscribe(ctx, s); err != nil {
		t.Fatal(err)
	}
	offs, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 1)})
	if err != nil {
		t.Fatal(err)
	}
	epoch := strings.Split(offs[0], ":")[0]
	const garbage = `{"type":"insert","project":"p1","collection":"c","documentId":42}`
	id, err := srv.Do("XADD", "sg:{p1}:s:c", "*", "e", garbage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("SPUBLISH", "sg:{p1}:c:c", epoch+":"+id+"\n"+garbage); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 3)}); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "the event after the bad one", func() bool { return len(r.get(s)) == 2 })
	if got := r.resetsOf(s); len(got) != 1 || got[0] != epoch+":"+id {
		t.Fatalf("resets %v, want one at %s:%s", got, epoch, id)
	}
	if n := droppedInvalid(m); n != 1 {
		t.Fatalf("dropped{reason=invalid} = %v, want 1", n)
	}
	h, err := b.History(ctx, s, offs[0], backplane.Page{})
	if err != nil || h.Recovered || len(h.Events) != 0 {
		t.Fatalf("resume across the bad entry: recovered %v, %d events, %v", h.Recovered, len(h.Events), err)
	}
	if n := droppedInvalid(m); n != 2 {
		t.Fatalf("dropped{reason=invalid} = %v after the resume, want 2", n)
	}
}

func droppedInvalid(m *metrics.Metrics) float64 {
	mf, _ := m.Registry.Gather()
	for _, f := range mf {
		if f.GetName() != "syncgate_events_dropped_total" {
			continue
		}
		for _, x := range f.GetMetric() {
			for _, l := range x.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == metrics.DropInvalid {
					return x.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRedisGatewayLimitsWin: after Redis lost its functions (restarted
// empty), a publisher that finds the library missing installs it with its
// own limits; the gateway replaces it with its configured ones at its next
// probe, and a publisher never replaces the gateway's.
func TestRedisGatewayLimitsWin(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) {
		c.HistorySize, c.HistoryTTL = 5, time.Hour
		c.ProbeInterval, c.ProbeTimeout = 200*time.Millisecond, 500*time.Millisecond
	})
	target, err := redisfn.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := target.CommandClient()
	t.Cleanup(func() { _ = rdb.Close() })
	publish := func(e syncgate.Event) error {
		enc, err := redisfn.Encode([]syncgate.Event{e}, time.Now())
		if err != nil {
			return err
		}
		_, err = redisfn.Publish(ctx, rdb, enc, nil, redisfn.PublisherLoader(rdb, redisfn.Limits{HistorySize: 1000}))
		return err
	}
	gatewayLib := backplane.RedisLibraryVersion + "\n5\n3600000\ngateway"
	if v, err := srv.Do("FCALL_RO", "syncgate_version", "0"); v != gatewayLib {
		t.Fatalf("library at start: %q %v", v, err)
	}
	if _, err := srv.Do("FUNCTION", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	if err := publish(ev("p1", "c", 0)); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "the gateway's library back", func() bool {
		v, _ := srv.Do("FCALL_RO", "syncgate_version", "0")
		return v == gatewayLib
	})
	for i := range 10 {
		if err := publish(ev("p1", "c", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := srv.Do("XLEN", "sg:{p1}:s:c"); n != "5" {
		t.Fatalf("history length %s, want the gateway's 5", n)
	}
}

// TestRedisNewerLibraryStays: a library of a later version (a newer release
// rolling out) is left in place by the probe, and logged once; an older one
// is replaced. Before, two releases replaced each other at every probe.
func TestRedisNewerLibraryStays(t *testing.T) {
	srv := redistest.Start(t)
	logs := &testlog.Buffer{}
	startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.ProbeInterval, c.ProbeTimeout = 100*time.Millisecond, 500*time.Millisecond
	})
	src := redisfn.Source(redisfn.Limits{}, redisfn.OwnerGateway)
	mine := "local VERSION = '" + backplane.RedisLibraryVersion + "'\n"
	if !strings.Contains(src, mine) {
		t.Fatalf("library source has no %q", mine)
	}
	install := func(version string) {
		t.Helper()
		if _, err := srv.Do("FUNCTION", "LOAD", "REPLACE", strings.Replace(src, mine, "local VERSION = '"+version+"'\n", 1)); err != nil {
			t.Fatal(err)
		}
	}
	version := func() string {
		v, _ := srv.Do("FCALL_RO", "syncgate_version", "0")
		return strings.SplitN(v, "\n", 2)[0]
	}

	install("99")
	await(t, 5*time.Second, "the probe to leave version 99", func() bool {
		return strings.Contains(logs.String(), "a newer gateway installed the function library")
	})
	// Three more probes check the library (each asks syncgate_version)
	// and leave it too.
	checks := func() int {
		info, _ := srv.Do("INFO", "commandstats")
		_, rest, _ := strings.Cut(info, "cmdstat_fcall_ro:calls=")
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		return n
	}
	from := checks()
	await(t, 5*time.Second, "three more probes", func() bool { return checks() >= from+3 })
	if v := version(); v != "99" {
		t.Fatalf("library version %q after the probes, want 99 left in place", v)
	}
	if n := strings.Count(logs.String(), "a newer gateway installed"); n != 1 {
		t.Fatalf("logged %d times, want once", n)
	}

	install("3")
	await(t, 5*time.Second, "version 3 replaced by this node's", func() bool { return version() == backplane.RedisLibraryVersion })
}
