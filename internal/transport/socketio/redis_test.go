package socketio_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
)

// TestAcrossNodes runs two in-process nodes on a real Redis: delivery from
// a publish on the other node, and recovery on the other node.
func TestAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	var nodes [2]*node
	for i := range nodes {
		bp, err := backplane.NewRedis(backplane.RedisConfig{URL: r.URL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = startNode(t, bp, nil)
	}
	a, b := nodes[0], nodes[1]
	tok := tokenFor(t, "u1", []string{"p1"}, nil, nil)
	c := dial(t, a, dialOpts{})
	first := c.mustConnect(map[string]string{"token": tok})
	c.emit(false, "join-project", "p1")
	c.expectEvent("joined-project")
	b.Publish(t, ev("insert", "p1", "t", "1", `1`, ""))
	state := c.expectEvent("database-change").State()
	if !strings.Contains(state, "|jp1/*@") {
		t.Fatalf("state %q", state)
	}
	c.ws.CloseNow()
	a.Publish(t, ev("update", "p1", "t", "1", `2`, ""), ev("delete", "p1", "t", "1", "", ""))

	c2, ans := reconnect(t, b, tok, first.PID, state)
	if ans.PID != first.PID {
		t.Fatal("not recovered on the other node")
	}
	for _, want := range []string{`"update"`, `"delete"`} {
		if e := c2.expectEvent("database-change"); !strings.Contains(string(e.Args[0]), want) {
			t.Fatalf("replayed %s, want %s", e.Args[0], want)
		}
	}
	a.Publish(t, ev("insert", "p1", "t", "2", `3`, ""))
	if e := c2.expectEvent("database-change"); !strings.Contains(string(e.Args[0]), `"data":3`) {
		t.Fatalf("live after recovery: %s", e.Args[0])
	}
}
