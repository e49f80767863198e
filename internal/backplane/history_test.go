package backplane_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/redistest"
)

// backplanes returns a fresh Memory and a Redis backplane, for tests that
// hold for both.
func backplanes(t *testing.T) map[string]backplane.Backplane {
	t.Helper()
	mem := backplane.NewMemory(backplane.MemoryConfig{})
	if err := mem.Start(context.Background(), newRecorder()); err != nil {
		t.Fatal(err)
	}
	rb, _ := startRedisBP(t, redistest.Start(t).URL(), nil)
	return map[string]backplane.Backplane{"memory": mem, "redis": rb}
}

// padEv is event seq of p/c with a document of about size bytes.
func padEv(coll string, seq, size int) syncgate.Event {
	e := ev("p", coll, seq)
	e.OldDocument = json.RawMessage(`"` + strings.Repeat("x", size) + `"`)
	return e
}

// TestHistoryPages: History answers a page at a time, bounded in events
// and bytes (at least one event, however large), with More until the end;
// reading on from each page's last offset yields every event once, in
// order.
func TestHistoryPages(t *testing.T) {
	for name, bp := range backplanes(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := backplane.Stream{Project: "p", Collection: "c"}
			first, err := bp.Publish(ctx, []syncgate.Event{ev("p", "c", 0)})
			if err != nil {
				t.Fatal(err)
			}
			var evs []syncgate.Event
			for i := 1; i <= 60; i++ {
				evs = append(evs, padEv("c", i, 1000))
			}
			evs = append(evs, padEv("c", 61, 20_000)) // larger than a page
			if _, err := bp.Publish(ctx, evs); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				page     backplane.Page
				maxCount int
			}{
				{backplane.Page{MaxEvents: 7}, 7},
				{backplane.Page{MaxBytes: 5000}, 5},
				{backplane.Page{MaxEvents: 1, MaxBytes: 1}, 1},
				{backplane.Page{}, 61},
			} {
				since, next, pages := first[0], 1, 0
				for {
					h, err := bp.History(ctx, s, since, tc.page)
					if err != nil || !h.Recovered {
						t.Fatalf("page %+v after %s: %+v, %v", tc.page, since, h, err)
					}
					pages++
					if len(h.Events) == 0 || len(h.Events) > tc.maxCount {
						t.Fatalf("page %+v: %d events, want 1 to %d", tc.page, len(h.Events), tc.maxCount)
					}
					if tc.page.MaxBytes > 0 && len(h.Events) > 1 && h.Bytes > tc.page.MaxBytes {
						t.Fatalf("page %+v holds %d bytes", tc.page, h.Bytes)
					}
					for _, e := range h.Events {
						if got := seqOf(t, e); got != next {
							t.Fatalf("page %+v: event %d, want %d", tc.page, got, next)
						}
						next++
					}
					since = h.Events[len(h.Events)-1].Offset
					if !h.More {
						break
					}
				}
				if next != 62 {
					t.Fatalf("page %+v: read up to %d of 61 events in %d pages", tc.page, next-1, pages)
				}
				if h, err := bp.History(ctx, s, since, tc.page); err != nil || !h.Recovered || h.More || len(h.Events) != 0 {
					t.Fatalf("after the last page: %+v, %v", h, err)
				}
			}
		})
	}
}

// TestForeignOffset: an offset of another stream (another collection, or
// the project stream) is never a position in this one: the resume answers
// recovered=false, with the head. Untagged offsets from before stream tags
// still resume.
func TestForeignOffset(t *testing.T) {
	for name, bp := range backplanes(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a := backplane.Stream{Project: "p", Collection: "a"}
			c := backplane.Stream{Project: "p", Collection: "c"}
			all := backplane.Stream{Project: "p", Collection: syncgate.AllCollections}
			offA, err := bp.Publish(ctx, []syncgate.Event{ev("p", "a", 1)})
			if err != nil {
				t.Fatal(err)
			}
			offC, err := bp.Publish(ctx, []syncgate.Event{ev("p", "c", 2), ev("p", "c", 3)})
			if err != nil {
				t.Fatal(err)
			}
			hAll, err := bp.History(ctx, all, "", backplane.Page{})
			if err != nil {
				t.Fatal(err)
			}
			for _, since := range []string{offA[0], hAll.Head} {
				h, err := bp.History(ctx, c, since, backplane.Page{})
				if err != nil || h.Recovered || len(h.Events) != 0 {
					t.Fatalf("stream c resumed from %s (another stream's): %+v, %v", since, h, err)
				}
				if off, err := backplane.ParseOffset(h.Head); err != nil || off.Foreign(c) {
					t.Fatalf("head %s: %v", h.Head, err)
				}
			}
			own, _ := backplane.ParseOffset(offC[0])
			if own.Foreign(c) || !own.Foreign(a) {
				t.Fatalf("offset %s: tagged for the wrong stream", offC[0])
			}
			legacy := own
			legacy.Stream = ""
			h, err := bp.History(ctx, c, legacy.String(), backplane.Page{})
			if err != nil || !h.Recovered || len(h.Events) != 1 || seqOf(t, h.Events[0]) != 3 {
				t.Fatalf("untagged offset %s: %+v, %v", legacy, h, err)
			}
		})
	}
}

// TestOffsetFormat: tagged offsets round-trip, untagged ones still parse,
// and malformed tags are refused.
func TestOffsetFormat(t *testing.T) {
	s := backplane.Stream{Project: "p1", Collection: "todos"}
	tag := backplane.StreamTag(s)
	if len(tag) != 12 || tag == backplane.StreamTag(backplane.Stream{Project: "p1", Collection: "todo"}) {
		t.Fatalf("tag %q", tag)
	}
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"1795318765429396:1795318765432-0", "1795318765429396:1795318765432-0", true},
		{"1795318765429396t" + tag + ":1795318765432-7", "1795318765429396t" + tag + ":1795318765432-7", true},
		{"m0a1b2c3d4e5ft" + tag + ":5-0", "m0a1b2c3d4e5ft" + tag + ":5-0", true},
		{"1795t:1-0", "", false},
		{"t" + tag + ":1-0", "", false},
		{"1795tABCDEF012345:1-0", "", false},
		{"1795t0123:1-0", "", false},
	} {
		o, err := backplane.ParseOffset(tc.in)
		if (err == nil) != tc.ok || tc.ok && o.String() != tc.out {
			t.Errorf("ParseOffset(%q) = %v, %v", tc.in, o, err)
		}
	}
}

// slowHistory is a backplane whose History waits for release and counts
// its calls.
type slowHistory struct {
	*backplane.Memory
	calls   atomic.Int32
	release chan struct{}
}

func (s *slowHistory) History(ctx context.Context, st backplane.Stream, since string, page backplane.Page) (backplane.History, error) {
	s.calls.Add(1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return backplane.History{}, ctx.Err()
	}
	return s.Memory.History(ctx, st, since, page)
}

// TestHistoryReaderShares: resumers asking for the same page at once
// share one read; each gets every event; the page's bytes count against
// the budget until the last of them releases it, and a read the budget
// cannot hold waits for it.
func TestHistoryReaderShares(t *testing.T) {
	slow := &slowHistory{Memory: backplane.NewMemory(backplane.MemoryConfig{}), release: make(chan struct{})}
	ctx := context.Background()
	var evs []syncgate.Event
	for i := range 20 {
		evs = append(evs, padEv("c", i, 1000))
	}
	offs, err := slow.Publish(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	page := backplane.Page{MaxBytes: 64 << 10}
	r := backplane.NewHistoryReader(slow, backplane.HistoryReaderConfig{Budget: 64 << 10, Metrics: m})
	s := backplane.Stream{Project: "p", Collection: "c"}
	subscribed := time.Now()
	const n = 10
	pages := make(chan backplane.SharedPage, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			p, err := r.Read(ctx, s, offs[0], page, subscribed)
			if err != nil {
				t.Error(err)
			}
			pages <- p
		})
	}
	// Every resumer has joined the one read (on a loaded machine one may
	// start late; after the read it would lead a second one, which waits
	// for budget the held pages keep).
	await(t, 10*time.Second, "every resumer waiting on one read", func() bool {
		return slow.calls.Load() == 1 && r.InFlight() == 64<<10 && r.Waiting(s, offs[0], page) == n
	})
	// Another stream's read does not fit beside it: it waits.
	other := make(chan error, 1)
	go func() {
		p, err := r.Read(ctx, backplane.Stream{Project: "p", Collection: "d"}, offs[0], page, subscribed)
		p.Release()
		other <- err
	}()
	close(slow.release)
	wg.Wait()
	close(pages)
	var held []backplane.SharedPage
	for p := range pages {
		if !p.Recovered || len(p.Events) != 19 || !p.Fresh {
			t.Fatalf("shared page: recovered %v, %d events, fresh %v", p.Recovered, len(p.Events), p.Fresh)
		}
		held = append(held, p)
	}
	if c := slow.calls.Load(); c != 1 {
		t.Fatalf("%d backplane reads for %d resumers of one page", c, n)
	}
	select {
	case err := <-other:
		t.Fatalf("a read beyond the budget ran while the page was held (%v)", err)
	default:
	}
	for _, p := range held {
		p.Release()
		p.Release() // idempotent
	}
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	await(t, 10*time.Second, "the budget free again", func() bool { return r.InFlight() == 0 })
	if got := counterValue(t, m, "syncgate_history_reads_total", "shared"); got != n-1 {
		t.Fatalf("syncgate_history_reads_total{kind=shared} = %v, want %d", got, n-1)
	}

	// A resumer whose subscription is newer than a shared read does not
	// take that read's head as the end of its replay.
	slow.release = make(chan struct{})
	first := make(chan backplane.SharedPage, 1)
	go func() {
		p, _ := r.Read(ctx, s, offs[0], page, time.Now())
		first <- p
	}()
	await(t, 10*time.Second, "the first read sent", func() bool { return slow.calls.Load() == 3 })
	late := make(chan backplane.SharedPage, 1)
	go func() {
		p, _ := r.Read(ctx, s, offs[0], page, time.Now())
		late <- p
	}()
	await(t, 10*time.Second, "the late resumer waiting", func() bool { return r.Waiting(s, offs[0], page) == 2 })
	close(slow.release)
	p1, p2 := <-first, <-late
	if !p1.Fresh || p2.Fresh {
		t.Fatalf("fresh: leader %v, late sharer %v; want true, false", p1.Fresh, p2.Fresh)
	}
	p1.Release()
	p2.Release()
}

// TestCursorEndsAtFirstFreshHead: the replay ends at the head of the first
// page read after the subscription; a stale shared page only moves the
// cursor.
func TestCursorEndsAtFirstFreshHead(t *testing.T) {
	mem := backplane.NewMemory(backplane.MemoryConfig{})
	ctx := context.Background()
	s := backplane.Stream{Project: "p", Collection: "c"}
	offs, _ := mem.Publish(ctx, []syncgate.Event{ev("p", "c", 0), ev("p", "c", 1), ev("p", "c", 2), ev("p", "c", 3)})
	stale, _ := mem.History(ctx, s, offs[0], backplane.Page{MaxEvents: 1})
	cur, evs := backplane.NewCursor(offs[0], time.Now(), backplane.SharedPage{History: stale})
	if len(evs) != 1 || !cur.More || cur.Since != offs[1] {
		t.Fatalf("after a stale page: %d events, cursor %+v", len(evs), cur)
	}
	if _, ok := cur.Until(); ok {
		t.Fatal("a stale page set the replay's end")
	}
	fresh, _ := mem.History(ctx, s, cur.Since, backplane.Page{MaxEvents: 1})
	evs = cur.Advance(backplane.SharedPage{History: fresh, Fresh: true})
	if until, ok := cur.Until(); !ok || until.String() != offs[3] || len(evs) != 1 || !cur.More {
		t.Fatalf("after the fresh page: until %v %v, %d events, more %v", until, ok, len(evs), cur.More)
	}
	// Published after the end of the replay: live delivery has it, the
	// replay does not.
	if _, err := mem.Publish(ctx, []syncgate.Event{ev("p", "c", 4)}); err != nil {
		t.Fatal(err)
	}
	last, _ := mem.History(ctx, s, cur.Since, backplane.Page{})
	if evs := cur.Advance(backplane.SharedPage{History: last, Fresh: true}); len(last.Events) != 2 || len(evs) != 1 || seqOf(t, evs[0]) != 3 || cur.More {
		t.Fatalf("past the end of the replay: %d of %d events, more %v", len(evs), len(last.Events), cur.More)
	}
}

// counterValue returns the value of counter name{kind=label}.
func counterValue(t testing.TB, m *metrics.Metrics, name, label string) float64 {
	t.Helper()
	mf, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mf {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetValue() == label {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}
