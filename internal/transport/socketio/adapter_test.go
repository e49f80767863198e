package socketio

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/transport/transporttest"
)

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
	log := &transporttest.Recorder{}
	out := &transport{sock: log, abort: sess.Abort(), pingInterval: time.Hour, pingTimeout: time.Hour,
		written: make(map[subKey]backplane.Offset)}
	sess.Attach(out)
	defer sess.Finish()
	claims, _ := h.Verify(context.Background(), "t")
	sess.Authenticate(claims)
	c := &conn{s: s, h: h, sess: sess, lastPong: &out.lastPong}
	key := keyOf(kindProject, backplane.Stream{Project: "p", Collection: syncgate.AllCollections})

	c.join(7, key)
	ack, n := log.Next(t, 0, "437[")
	if !strings.Contains(ack, `"ok":true`) || !strings.Contains(ack, `"room":"project:p"`) {
		t.Fatalf("ack %s", ack)
	}
	joined, n := log.Next(t, n, `"joined-project"`)
	if !strings.Contains(joined, `"sg1|jp/*@`) {
		t.Fatalf("joined-project without the state: %s", joined)
	}

	offs, err := bp.Publish(context.Background(), []syncgate.Event{{Type: "insert", Project: "p", Collection: "t", Document: []byte(`{"n":1}`)}})
	if err != nil {
		t.Fatal(err)
	}
	change, n := log.Next(t, n, `"database-change"`)
	hist, err := bp.History(context.Background(), key.Stream, "", backplane.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"sg1|jp/*@` + hist.Head + `"]`; !strings.HasSuffix(change, want) || offs[0] == hist.Head {
		t.Fatalf("event %s, want it to end with the state %s (the project stream's offset)", change, want)
	}

	c.leave(8, key)
	left, n := log.Next(t, n, `"left-project"`)
	if !strings.HasSuffix(left, `,"sg1"]`) {
		t.Fatalf("left-project still names the stream: %s", left)
	}

	c.join(-1, key)
	_, _ = log.Next(t, n, `"joined-project"`)
	head, _ := backplane.ParseOffset(hist.Head)
	head.Hi += 5
	h.Reset(key.Stream, head)
	var code int
	log.Await(t, "a gap to close the connection", func(_ []string, c int) bool { code = c; return c != 0 })
	if code != int(hub.CloseServiceRestart) {
		t.Fatalf("closed with %d after a gap, want 1012", code)
	}
}
