package socketio

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
)

// socketLog is a socket that records packets: the adapter over the real
// engine, without a network.
type socketLog struct {
	mu      sync.Mutex
	packets []string
	code    int
	changed chan struct{}
}

func (l *socketLog) Write(msg []byte, _ <-chan struct{}) error {
	l.mu.Lock()
	l.packets = append(l.packets, string(msg))
	l.mu.Unlock()
	l.notify()
	return nil
}

func (l *socketLog) Flush() error { return nil }

func (l *socketLog) End(code int, _ string) {
	l.mu.Lock()
	l.code = code
	l.mu.Unlock()
	l.notify()
}

func (l *socketLog) notify() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// next waits for a packet containing want after the first n and returns
// it with the count of packets so far.
func (l *socketLog) next(t *testing.T, n int, want string) (string, int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		ps := append([]string(nil), l.packets...)
		l.mu.Unlock()
		for i := n; i < len(ps); i++ {
			if strings.Contains(ps[i], want) {
				return ps[i], i + 1
			}
		}
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("no packet with %q after %d: %q", want, n, ps)
		}
	}
}

type grantP struct{}

func (grantP) Verify(context.Context, string) (*auth.Claims, error) {
	return &auth.Claims{Subject: "u", ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"p"}}, nil
}

// TestAdapterRecoveryState drives the Socket.IO adapter over the engine:
// join-project is acked and announced with the recovery state naming the
// stream at its head, each event carries the state with its own offset,
// leave-project removes the entry, and a gap closes with 1012.
func TestAdapterRecoveryState(t *testing.T) {
	bp := backplane.NewMemory(backplane.MemoryConfig{})
	defer bp.Close()
	h, err := hub.New(hub.Config{Verifier: grantP{}}, bp)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, _ := New(h, Config{})
	sess, err := h.Register(context.Background(), hub.SessionConfig{Transport: hub.TransportSocketIO, Overhead: itemOverhead})
	if err != nil {
		t.Fatal(err)
	}
	log := &socketLog{changed: make(chan struct{}, 1)}
	out := &transport{sock: log, abort: sess.Abort(), pingInterval: time.Hour, pingTimeout: time.Hour,
		written: make(map[subKey]backplane.Offset)}
	sess.Attach(out)
	defer sess.Finish()
	claims, _ := h.Verify(context.Background(), "t")
	sess.Authenticate(claims)
	c := &conn{s: s, h: h, sess: sess, lastPong: &out.lastPong}
	key := keyOf(kindProject, backplane.Stream{Project: "p", Collection: syncgate.AllCollections})

	c.join(7, key)
	ack, n := log.next(t, 0, "437[")
	if !strings.Contains(ack, `"ok":true`) || !strings.Contains(ack, `"room":"project:p"`) {
		t.Fatalf("ack %s", ack)
	}
	joined, n := log.next(t, n, `"joined-project"`)
	if !strings.Contains(joined, `"sg1|jp/*@`) {
		t.Fatalf("joined-project without the state: %s", joined)
	}

	offs, err := bp.Publish(context.Background(), []syncgate.Event{{Type: "insert", Project: "p", Collection: "t", Document: []byte(`{"n":1}`)}})
	if err != nil {
		t.Fatal(err)
	}
	change, n := log.next(t, n, `"database-change"`)
	hist, err := bp.History(context.Background(), key.Stream, "", backplane.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"sg1|jp/*@` + hist.Head + `"]`; !strings.HasSuffix(change, want) || offs[0] == hist.Head {
		t.Fatalf("event %s, want it to end with the state %s (the project stream's offset)", change, want)
	}

	c.leave(8, key)
	left, n := log.next(t, n, `"left-project"`)
	if !strings.HasSuffix(left, `,"sg1"]`) {
		t.Fatalf("left-project still names the stream: %s", left)
	}

	c.join(-1, key)
	_, _ = log.next(t, n, `"joined-project"`)
	head, _ := backplane.ParseOffset(hist.Head)
	head.Hi += 5
	h.Reset(key.Stream, head)
	deadline := time.After(10 * time.Second)
	for {
		log.mu.Lock()
		code := log.code
		log.mu.Unlock()
		if code != 0 {
			if code != int(hub.CloseServiceRestart) {
				t.Fatalf("closed with %d after a gap, want 1012", code)
			}
			return
		}
		select {
		case <-log.changed:
		case <-deadline:
			t.Fatal("a gap did not close the connection")
		}
	}
}
