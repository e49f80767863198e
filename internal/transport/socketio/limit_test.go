package socketio_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/wstest"
)

// TestOneLimitForBothTransports: MaxConnections is the node's, counted
// over /v1/ws and /socket.io/ together (each endpoint used to count its
// own, so a node admitted twice its limit), and /readyz reports the one
// drain of both.
func TestOneLimitForBothTransports(t *testing.T) {
	const limit = 4
	n := startNode(t, nil, func(c *nodeConfig) { c.MaxConnections = limit })
	token := tokenFor(t, "u1", []string{"p1"}, nil, nil)
	for i := 0; i < limit/2; i++ {
		wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token}) // waits for ready
		dial(t, n, dialOpts{}).mustConnect(map[string]string{"token": token})
	}
	if got := n.Hub.Connections(); got != limit {
		t.Fatalf("%d connections, want %d", got, limit)
	}
	for _, tr := range []string{"ws", "socketio"} {
		if got := n.Metric(t, "syncgate_connections", "transport", tr); got != limit/2 {
			t.Fatalf("syncgate_connections{transport=%s} = %v, want %d", tr, got, limit/2)
		}
	}

	// One more of either kind is refused with 1013.
	native, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if code := native.Closed(); code != websocket.StatusTryAgainLater {
		t.Fatalf("a native connection over the limit closed with %d, want 1013", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, n.sioURL(""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
		t.Fatalf("a Socket.IO connection over the limit: %v, want close 1013", err)
	}
	if got := n.Hub.Connections(); got != limit {
		t.Fatalf("%d connections after the refusals, want %d", got, limit)
	}

	// One drain for both: /readyz turns 503 and both kinds are closed 1012.
	if code := httpStatus(t, n.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d before the drain", code)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), wait)
	defer dcancel()
	if err := n.Hub.Drain(dctx, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if code := httpStatus(t, n.URL+"/readyz"); code != 503 {
		t.Fatalf("/readyz %d while draining, want 503", code)
	}
	if got := n.Metric(t, "syncgate_disconnects_total", "code", "1012"); got != limit {
		t.Fatalf("%v connections closed with 1012, want %d", got, limit)
	}
}

func httpStatus(t testing.TB, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
