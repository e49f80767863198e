package hub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
)

const wait = 10 * time.Second

// rec is one thing the engine made a fake transport do.
type rec struct {
	kind    string // "events", "frame", "gap", "close"
	key     hub.SubKey
	offsets []backplane.Offset
	data    string
	code    hub.CloseCode
	reason  string
}

// fake is a hub.Transport without sockets: it records what the engine
// writes. While hold is open, writes wait for it to close (or for Close),
// as a client that does not read.
type fake struct {
	gapCloses bool          // Gap answers closeAfter, as Socket.IO's does
	heartbeat func() error  // Heartbeat's answer; nil is success
	hold      chan struct{} // when set, writes wait until it is closed
	abort     <-chan struct{}

	mu      sync.Mutex
	recs    []rec
	closed  chan struct{}
	changed chan struct{} // capacity 1: recs changed
}

func newFake() *fake {
	return &fake{closed: make(chan struct{}), changed: make(chan struct{}, 1)}
}

var _ hub.Transport = (*fake)(nil)

func (f *fake) record(r rec) {
	f.mu.Lock()
	f.recs = append(f.recs, r)
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fake) wait() error {
	if f.hold == nil {
		return nil
	}
	select {
	case <-f.hold:
		return nil
	case <-f.abort:
		return hub.ErrAborted
	case <-f.closed:
		return hub.ErrAborted
	}
}

func (f *fake) WriteEvents(sub *hub.Subscription, events []*hub.Message) error {
	if err := f.wait(); err != nil {
		return err
	}
	offs := make([]backplane.Offset, len(events))
	for i, m := range events {
		offs[i] = m.Offset()
		if len(m.Data(sub.Encoding())) == 0 {
			return fmt.Errorf("event %v has no bytes in encoding %d", m.Offset(), sub.Encoding())
		}
	}
	f.record(rec{kind: "events", key: sub.Key(), offsets: offs})
	return nil
}

func (f *fake) WriteFrame(fr hub.Frame) error {
	if err := f.wait(); err != nil {
		return err
	}
	kind := "frame"
	if fr.Meta == "gap" {
		kind = "gap"
	}
	f.record(rec{kind: kind, data: string(fr.Data)})
	return nil
}

func (f *fake) Flush() error { return nil }

func (f *fake) Heartbeat() (time.Duration, error) {
	if f.heartbeat != nil {
		if err := f.heartbeat(); err != nil {
			return 0, err
		}
	}
	return time.Hour, nil
}

func (f *fake) Gap(sub *hub.Subscription, head backplane.Offset) (hub.Frame, bool) {
	if f.gapCloses {
		return hub.Frame{}, true
	}
	return hub.Frame{Data: []byte("gap " + sub.Stream().String() + " " + head.String()), Meta: "gap"}, false
}

func (f *fake) Close(code hub.CloseCode, reason string) {
	f.mu.Lock()
	select {
	case <-f.closed:
		f.mu.Unlock()
		return
	default:
	}
	close(f.closed)
	f.mu.Unlock()
	f.record(rec{kind: "close", code: code, reason: reason})
}

// await waits until cond holds over the records.
func (f *fake) await(t testing.TB, what string, cond func([]rec) bool) []rec {
	t.Helper()
	deadline := time.After(wait)
	for {
		f.mu.Lock()
		recs := append([]rec(nil), f.recs...)
		f.mu.Unlock()
		if cond(recs) {
			return recs
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; records: %+v", what, recs)
		}
	}
}

// closedWith waits for the transport's close and returns its code.
func (f *fake) closedWith(t testing.TB) hub.CloseCode {
	t.Helper()
	recs := f.await(t, "the close", func(rs []rec) bool { return len(rs) > 0 && rs[len(rs)-1].kind == "close" })
	return recs[len(recs)-1].code
}

// offsets returns every offset written on key, in order.
func offsets(recs []rec, key hub.SubKey) []backplane.Offset {
	var out []backplane.Offset
	for _, r := range recs {
		if r.kind == "events" && r.key == key {
			out = append(out, r.offsets...)
		}
	}
	return out
}

// verifier knows tokens by name.
type verifier map[string]*auth.Claims

func (v verifier) Verify(_ context.Context, token string) (*auth.Claims, error) {
	c, ok := v[token]
	if !ok {
		return nil, &auth.TokenError{Reason: auth.ReasonSignature, Err: errors.New("unknown test token")}
	}
	cp := *c
	return &cp, nil
}

// engine is a started hub over a memory backplane.
type engine struct {
	*hub.Hub
	bp *backplane.Memory
	m  *metrics.Metrics
}

func startEngine(t testing.TB, cfg hub.Config, mem backplane.MemoryConfig) *engine {
	t.Helper()
	if cfg.Verifier == nil {
		cfg.Verifier = verifier{
			"alice":   {Subject: "alice", ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"p"}},
			"alice-q": {Subject: "alice", ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"q"}},
			"bob":     {Subject: "bob", ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"p"}, Roles: []string{"admin"}},
		}
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	m := metrics.New()
	cfg.Metrics = m
	bp := backplane.NewMemory(mem)
	h, err := hub.New(cfg, bp)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bp.Close() })
	return &engine{Hub: h, bp: bp, m: m}
}

// session registers, attaches f and authenticates with token (none when
// empty). The test's "reader" ends it with finish (also at cleanup).
func (e *engine) session(t testing.TB, f *fake, transport, token string) (*hub.Session, func()) {
	t.Helper()
	s, err := e.Register(context.Background(), hub.SessionConfig{Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	f.abort = s.Abort()
	s.Attach(f)
	finish := sync.OnceFunc(func() { s.Close(hub.CloseNormal, "test over", false); s.Finish() })
	t.Cleanup(finish)
	if token != "" {
		claims, err := e.Verify(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		s.Authenticate(claims)
	}
	return s, finish
}

// publish publishes n events to p/c numbered from first, padded to pad
// bytes, and returns their offsets.
func (e *engine) publish(t testing.TB, first, n, pad int, aud *syncgate.Audience) []backplane.Offset {
	t.Helper()
	evs := make([]syncgate.Event, n)
	for i := range evs {
		doc := fmt.Sprintf(`{"n":%d,"pad":"%0*d"}`, first+i, pad, 0)
		evs[i] = syncgate.Event{Type: "document:created", Project: "p", Collection: "c", Document: []byte(doc), Audience: aud}
	}
	offs, err := e.bp.Publish(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]backplane.Offset, len(offs))
	for i, o := range offs {
		if out[i], err = backplane.ParseOffset(o); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var pc = hub.SubKey{Stream: backplane.Stream{Project: "p", Collection: "c"}}

// open opens and begins a subscription to p/c after since, announced by a
// frame "subscribed <recovered>".
func open(t testing.TB, s *hub.Session, since string) (*hub.Subscription, hub.Opened) {
	t.Helper()
	sub, opened, err := s.Open(hub.OpenRequest{Key: pc, Since: since, Encoding: hub.JSON})
	if err != nil {
		t.Fatal(err)
	}
	s.Begin([]hub.Frame{{Data: []byte(fmt.Sprintf("subscribed %v", opened.Recovered))}}, sub)
	return sub, opened
}
