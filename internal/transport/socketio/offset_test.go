package socketio_test

import (
	"testing"

	"github.com/syncgate/syncgate/internal/wstest"
)

// TestRecoveryForeignOffset: a recovery state that names p/c with an
// offset of another stream (p/a) is not a position in p/c: the session is
// not recovered (a fresh pid; the client rejoins), never a replay from a
// wrong place. The same state with p/c's own offset recovers.
func TestRecoveryForeignOffset(t *testing.T) {
	n := startNode(t, nil, nil)
	tok := tokenFor(t, "u1", []string{"p"}, nil, nil)
	pid, _ := subscribed(t, n, tok)
	offA := n.Publish(t, wstest.Doc("p", "a", 1))
	offC := n.Publish(t, wstest.Doc("p", "c", 1), wstest.Doc("p", "c", 2))

	c, a := reconnect(t, n, tok, pid, "sg1|sp/c@"+offA[0])
	if a.PID == pid {
		t.Fatalf("recovered p/c from p/a's offset %s", offA[0])
	}
	c.ws.CloseNow()

	c, a = reconnect(t, n, tok, pid, "sg1|sp/c@"+offC[0])
	if a.PID != pid {
		t.Fatalf("pid %s, want %s: p/c's own offset did not recover", a.PID, pid)
	}
	next := 2
	readSeqs(t, c, &next, 3)
}
