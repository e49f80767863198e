package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/wstest"
)

func metric(t testing.TB, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	return (&wstest.Node{Metrics: m}).Metric(t, name, labels...)
}

// TestLiveDelivery: the announcing frame first, then every live event in
// offset order; an event whose audience excludes the user is not written
// and is counted.
func TestLiveDelivery(t *testing.T) {
	e := startEngine(t, hub.Config{}, backplane.MemoryConfig{})
	f := newFake()
	s, _ := e.session(t, f, hub.TransportWS, "alice")
	open(t, s, "")
	want := e.publish(t, 0, 5, 0, nil)
	e.publish(t, 5, 1, 0, &syncgate.Audience{Roles: []string{"admin"}}) // bob's only
	want = append(want, e.publish(t, 6, 2, 0, nil)...)
	recs := f.await(t, "7 events", func(rs []rec) bool { return len(offsets(rs, pc)) == 7 })
	if recs[0].kind != "frame" || recs[0].data != "subscribed true" {
		t.Fatalf("first record %+v, want the subscribed frame", recs[0])
	}
	if got := offsets(recs, pc); !slices.Equal(got, want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
	if got := metric(t, e.m, "syncgate_events_dropped_total", "reason", metrics.DropAudience); got != 1 {
		t.Fatalf("audience drops %v, want 1", got)
	}
	if got := metric(t, e.m, "syncgate_subscriptions", "transport", hub.TransportWS); got != 1 {
		t.Fatalf("subscriptions{ws} %v, want 1", got)
	}
}

// TestReplayAcrossTheSeam resumes after event 9 of 100 with a queue bound
// far below the history (so the replay is read in pages and pulled in
// chunks) while 10 more events are published live during the replay: the
// client gets 10..109, each once, in order.
func TestReplayAcrossTheSeam(t *testing.T) {
	e := startEngine(t, hub.Config{MaxQueueBytes: 8 << 10}, backplane.MemoryConfig{})
	history := e.publish(t, 0, 100, 200, nil)
	f := newFake()
	f.hold = make(chan struct{}) // the client reads nothing yet
	s, _ := e.session(t, f, hub.TransportWS, "alice")
	_, opened := open(t, s, history[9].String())
	if !opened.Recovered || opened.Head != history[99] {
		t.Fatalf("opened %+v, want recovered at %v", opened, history[99])
	}
	live := e.publish(t, 100, 10, 200, nil) // buffered while replaying
	close(f.hold)
	want := append(slices.Clone(history[10:]), live...)
	recs := f.await(t, "the replay and the live events", func(rs []rec) bool { return len(offsets(rs, pc)) >= len(want) })
	if got := offsets(recs, pc); !slices.Equal(got, want) {
		t.Fatalf("got %d offsets %v\nwant %d %v", len(got), got, len(want), want)
	}
	batches := 0
	for _, r := range recs {
		if r.kind == "events" {
			batches++
		}
	}
	if batches < 3 {
		t.Fatalf("%d batches: the replay was not pulled in chunks", batches)
	}
	if got := metric(t, e.m, "syncgate_slow_consumer_disconnects_total"); got != 0 {
		t.Fatalf("a catching-up client was closed as slow (%v)", got)
	}
}

// TestResumeTrimmed: history no longer holds what follows since, so the
// subscription is announced not recovered and goes live from the head.
func TestResumeTrimmed(t *testing.T) {
	e := startEngine(t, hub.Config{}, backplane.MemoryConfig{HistorySize: 5})
	old := e.publish(t, 0, 20, 0, nil)
	f := newFake()
	s, _ := e.session(t, f, hub.TransportWS, "alice")
	_, opened := open(t, s, old[2].String())
	if opened.Recovered {
		t.Fatal("recovered, want not: history was trimmed")
	}
	next := e.publish(t, 20, 1, 0, nil)
	recs := f.await(t, "the live event", func(rs []rec) bool { return len(offsets(rs, pc)) == 1 })
	if recs[0].data != "subscribed false" || offsets(recs, pc)[0] != next[0] {
		t.Fatalf("records %+v", recs)
	}
}

// TestSlowConsumer: a client that reads nothing while events overflow its
// queue bound is closed with 4008, counted by transport.
func TestSlowConsumer(t *testing.T) {
	e := startEngine(t, hub.Config{MaxQueueBytes: 4 << 10}, backplane.MemoryConfig{})
	f := newFake()
	f.hold = make(chan struct{}) // never released
	s, finish := e.session(t, f, hub.TransportSocketIO, "alice")
	open(t, s, "")
	e.publish(t, 0, 40, 200, nil)
	if code := f.closedWith(t); code != hub.CloseSlowConsumer {
		t.Fatalf("closed with %d, want 4008", code)
	}
	finish()
	if got := metric(t, e.m, "syncgate_slow_consumer_disconnects_total", "transport", hub.TransportSocketIO); got != 1 {
		t.Fatalf("slow consumers{socketio} %v, want 1", got)
	}
	if got := metric(t, e.m, "syncgate_events_dropped_total", "reason", metrics.DropSlowClient); got == 0 {
		t.Fatal("the dropped queue was not counted")
	}
	if e.Connections() != 0 || metric(t, e.m, "syncgate_subscriptions") != 0 {
		t.Fatal("the session was not released")
	}
}

// TestReset: a backplane Reset past what a live subscription has is a gap,
// said as the transport says it (a frame, or a close with 1012); one the
// subscription already passed is nothing.
func TestReset(t *testing.T) {
	for _, closes := range []bool{false, true} {
		t.Run(fmt.Sprintf("gapCloses=%v", closes), func(t *testing.T) {
			e := startEngine(t, hub.Config{}, backplane.MemoryConfig{})
			f := newFake()
			f.gapCloses = closes
			s, _ := e.session(t, f, hub.TransportWS, "alice")
			open(t, s, "")
			offs := e.publish(t, 0, 3, 0, nil)
			f.await(t, "3 events", func(rs []rec) bool { return len(offsets(rs, pc)) == 3 })
			e.Reset(pc.Stream, offs[2].String()) // passed already
			head := offs[2]
			head.Hi += 5
			e.Reset(pc.Stream, head.String())
			if closes {
				if code := f.closedWith(t); code != hub.CloseServiceRestart {
					t.Fatalf("closed with %d, want 1012", code)
				}
				return
			}
			recs := f.await(t, "the gap", func(rs []rec) bool { return rs[len(rs)-1].kind == "gap" })
			gaps := 0
			for _, r := range recs {
				if r.kind == "gap" {
					gaps++
				}
			}
			if gaps != 1 || !strings.HasSuffix(recs[len(recs)-1].data, head.String()) {
				t.Fatalf("records %+v, want one gap at %v", recs, head)
			}
		})
	}
}

// TestResetDuringReplay: a Reset that arrives while the subscription
// replays is applied after the replayed events.
func TestResetDuringReplay(t *testing.T) {
	e := startEngine(t, hub.Config{}, backplane.MemoryConfig{})
	history := e.publish(t, 0, 10, 0, nil)
	f := newFake()
	f.hold = make(chan struct{})
	s, _ := e.session(t, f, hub.TransportWS, "alice")
	open(t, s, history[4].String())
	head := history[9]
	head.Hi += 3
	e.Reset(pc.Stream, head.String())
	close(f.hold)
	recs := f.await(t, "the gap", func(rs []rec) bool { return len(rs) > 0 && rs[len(rs)-1].kind == "gap" })
	if got := offsets(recs, pc); !slices.Equal(got, history[5:]) {
		t.Fatalf("replayed %v, want %v before the gap", got, history[5:])
	}
}

// TestDrain: one drain closes the sessions of every transport with 1012
// after writing what they had queued, and refuses new ones.
func TestDrain(t *testing.T) {
	e := startEngine(t, hub.Config{}, backplane.MemoryConfig{})
	var fakes []*fake
	for _, tr := range []string{hub.TransportWS, hub.TransportSocketIO, hub.TransportSSE} {
		f := newFake()
		f.hold = make(chan struct{})
		s, finish := e.session(t, f, tr, "alice")
		open(t, s, "")
		go func() { <-f.closed; finish() }() // the transport's reader ends
		fakes = append(fakes, f)
	}
	want := e.publish(t, 0, 3, 0, nil)
	done := make(chan error, 1)
	go func() { done <- e.Drain(context.Background(), 0) }()
	deadline := time.After(wait)
	for !e.Draining() {
		select {
		case <-deadline:
			t.Fatal("Drain did not begin")
		case <-time.After(time.Millisecond):
		}
	}
	if _, err := e.Register(context.Background(), hub.SessionConfig{Transport: hub.TransportWS}); hub.RefusalCode(err) != hub.CloseServiceRestart {
		t.Fatalf("Register while draining: %v, want 1012", err)
	}
	for _, f := range fakes {
		close(f.hold)
	}
	for i, f := range fakes {
		if code := f.closedWith(t); code != hub.CloseServiceRestart {
			t.Fatalf("session %d closed with %d, want 1012", i, code)
		}
		f.mu.Lock()
		got := offsets(f.recs, pc)
		f.mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("session %d flushed %v before its close, want %v", i, got, want)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Drain did not return")
	}
	if e.Connections() != 0 {
		t.Fatalf("%d sessions left", e.Connections())
	}
}

// TestOneConnectionLimit: MaxConnections is the node's, over every
// transport together.
func TestOneConnectionLimit(t *testing.T) {
	e := startEngine(t, hub.Config{MaxConnections: 3}, backplane.MemoryConfig{})
	var finishes []func()
	for _, tr := range []string{hub.TransportWS, hub.TransportSocketIO, hub.TransportSSE} {
		_, finish := e.session(t, newFake(), tr, "")
		finishes = append(finishes, finish)
	}
	for _, tr := range []string{hub.TransportWS, hub.TransportSocketIO, hub.TransportSSE} {
		if _, err := e.Register(context.Background(), hub.SessionConfig{Transport: tr}); hub.RefusalCode(err) != hub.CloseTryAgainLater {
			t.Fatalf("a 4th session (%s): %v, want 1013", tr, err)
		}
	}
	for _, tr := range []string{hub.TransportWS, hub.TransportSocketIO, hub.TransportSSE} {
		if got := metric(t, e.m, "syncgate_connections", "transport", tr); got != 1 {
			t.Fatalf("connections{%s} %v, want 1", tr, got)
		}
	}
	finishes[1]()
	e.session(t, newFake(), hub.TransportWS, "")
	if e.Connections() != 3 || metric(t, e.m, "syncgate_connections") != 3 {
		t.Fatalf("%d sessions, want 3", e.Connections())
	}
}

// TestOpenRefusals: every refusal of Open is an *hub.Error with the
// shared code, and leaves no subscription behind.
func TestOpenRefusals(t *testing.T) {
	e := startEngine(t, hub.Config{MaxSubscriptions: 2}, backplane.MemoryConfig{})
	s, _ := e.session(t, newFake(), hub.TransportWS, "alice")
	open(t, s, "")
	if _, _, err := s.Open(hub.OpenRequest{Key: hub.SubKey{Stream: backplane.Stream{Project: "p", Collection: "d"}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   hub.SubKey
		since string
		code  string
	}{
		{"bad collection", hub.SubKey{Stream: backplane.Stream{Project: "p", Collection: "a b"}}, "", hub.CodeBadRequest},
		{"bad since", hub.SubKey{Stream: backplane.Stream{Project: "p", Collection: "x"}}, "nope", hub.CodeBadRequest},
		{"not granted", hub.SubKey{Stream: backplane.Stream{Project: "q", Collection: "x"}}, "", hub.CodeForbidden},
		{"duplicate", pc, "", hub.CodeDuplicate},
		{"over the limit", hub.SubKey{Stream: backplane.Stream{Project: "p", Collection: "x"}}, "", hub.CodeLimitExceeded},
		{"same stream, other kind, over the limit", hub.SubKey{Kind: 's', Stream: pc.Stream}, "", hub.CodeLimitExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.Open(hub.OpenRequest{Key: tt.key, Since: tt.since})
			var he *hub.Error
			if !errors.As(err, &he) || he.Code != tt.code {
				t.Fatalf("Open: %v, want code %s", err, tt.code)
			}
		})
	}
	if got := metric(t, e.m, "syncgate_subscriptions"); got != 2 {
		t.Fatalf("%v subscriptions, want 2", got)
	}
}

// TestRefresh: a fresh token for the same user replaces the grants and
// ends what they no longer allow; another user's token, or a bad one, is
// refused and changes nothing.
func TestRefresh(t *testing.T) {
	e := startEngine(t, hub.Config{}, backplane.MemoryConfig{})
	s, _ := e.session(t, newFake(), hub.TransportWS, "alice")
	sub, _ := open(t, s, "")
	for token, code := range map[string]string{"bob": hub.CodeForbidden, "nope": hub.CodeUnauthorized} {
		var he *hub.Error
		if _, _, err := s.Refresh(token); !errors.As(err, &he) || he.Code != code {
			t.Fatalf("Refresh(%s): %v, want %s", token, err, code)
		}
	}
	if s.Lookup(pc) != sub {
		t.Fatal("a refused refresh changed the subscriptions")
	}
	claims, revoked, err := s.Refresh("alice-q")
	if err != nil || claims.Projects[0] != "q" {
		t.Fatalf("Refresh: %v %v", claims, err)
	}
	if len(revoked) != 1 || revoked[0] != sub || s.Lookup(pc) != nil {
		t.Fatalf("revoked %v, want the p/c subscription ended", revoked)
	}
}

// TestExpiry: at the token's expiry the session closes with 4009.
func TestExpiry(t *testing.T) {
	v := verifier{"soon": {Subject: "u", ExpiresAt: time.Now().Add(50 * time.Millisecond), Projects: []string{"p"}}}
	e := startEngine(t, hub.Config{Verifier: v}, backplane.MemoryConfig{})
	f := newFake()
	e.session(t, f, hub.TransportWS, "soon")
	if code := f.closedWith(t); code != hub.CloseCode(auth.CloseTokenExpired) {
		t.Fatalf("closed with %d, want 4009", code)
	}
}

// TestAuthDeadline: a session not authenticated within AuthTimeout closes
// with 4001 and its reason.
func TestAuthDeadline(t *testing.T) {
	e := startEngine(t, hub.Config{AuthTimeout: 20 * time.Millisecond}, backplane.MemoryConfig{})
	f := newFake()
	s, err := e.Register(context.Background(), hub.SessionConfig{Transport: hub.TransportWS, AuthReason: "say who you are"})
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(f)
	defer s.Finish()
	if code := f.closedWith(t); code != hub.CloseUnauthorized {
		t.Fatalf("closed with %d, want 4001", code)
	}
	if r := f.recs[len(f.recs)-1].reason; r != "say who you are" {
		t.Fatalf("reason %q", r)
	}
}

// TestHeartbeatStall: a heartbeat that finds the peer stalled closes the
// session with 4008 and the transport's reason.
func TestHeartbeatStall(t *testing.T) {
	e := startEngine(t, hub.Config{}, backplane.MemoryConfig{})
	f := newFake()
	f.heartbeat = func() error { return fmt.Errorf("%w: no pong within 1s", hub.ErrStalled) }
	s, err := e.Register(context.Background(), hub.SessionConfig{Transport: hub.TransportWS, Heartbeat: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(f)
	defer s.Finish()
	if code := f.closedWith(t); code != hub.CloseSlowConsumer {
		t.Fatalf("closed with %d, want 4008", code)
	}
	if r := f.recs[len(f.recs)-1].reason; !strings.Contains(r, "no pong") {
		t.Fatalf("reason %q", r)
	}
}
