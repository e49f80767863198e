package ws_test

import (
	"testing"

	"github.com/syncgate/syncgate/internal/wstest"
)

// TestSubscribeForeignOffset: since from another stream (another
// collection, or the project stream) answers recovered:false with the
// stream's head, and replays nothing; the client reloads. since from the
// stream itself replays after it.
func TestSubscribeForeignOffset(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	offA := n.Publish(t, wstest.Doc("p", "a", 1))
	offC := n.Publish(t, wstest.Doc("p", "c", 1), wstest.Doc("p", "c", 2))
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p")})
	all := c.Subscribe("all", "p", "*", "")

	for i, since := range []string{offA[0], all.Offset} {
		id := string(rune('x' + i))
		f := c.Subscribe(id, "p", "c", since)
		if f.Recovered || f.Offset != offC[1] {
			t.Fatalf("since %s (another stream's): %s, want recovered:false at %s", since, f.Raw, offC[1])
		}
		c.Send(map[string]any{"op": "unsubscribe", "id": id, "project": "p", "collection": "c"})
		c.Expect("unsubscribed")
	}
	if f := c.Subscribe("own", "p", "c", offC[0]); !f.Recovered {
		t.Fatalf("since p/c's own offset: %s", f.Raw)
	}
	if got := c.Events(1); wstest.Seq(t, got[0]) != 2 {
		t.Fatalf("replayed %+v", got)
	}
}
