// Package guard holds what the session engine (internal/hub) and the
// WebSocket layer (internal/wsconn) share without importing each other:
// Guard, the recover boundary around every connection goroutine (a panic
// closes that connection with 1011, is logged once with its stack and
// counted in syncgate_panics_total{transport}; the process lives on), the
// transport names, and the two write errors after which a session closes.
//
// Concurrency: Guard is a value, safe for concurrent use.
package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/syncgate/syncgate/internal/metrics"
)

// Transport names, the `transport` label of syncgate_panics_total.
const (
	TransportWS       = "ws"
	TransportSocketIO = "socketio"
)

// Errors of a transport's writes after which the session closes the
// connection; the close frame still fits (see internal/wsconn).
var (
	// ErrStalled means the peer read nothing for the write timeout.
	ErrStalled = errors.New("wsconn: the peer stopped reading")
	// ErrAborted means a write gave up waiting for room because a close
	// was decided.
	ErrAborted = errors.New("wsconn: write abandoned for a close")
)

// Guard is the recover boundary of one transport's connection goroutines.
type Guard struct {
	Log       *slog.Logger
	Metrics   *metrics.Metrics // may be nil
	Transport string
}

// Run calls f and recovers a panic in it: the panic is logged once with its
// stack and counted, then onPanic runs (it closes the connection with 1011
// and lets the connection's deferred cleanup release its resources). A
// panic inside onPanic is recovered and logged too.
func (g Guard) Run(goroutine string, f func(), onPanic func()) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		g.Log.Error("connection goroutine panicked; closing the connection with 1011",
			"transport", g.Transport, "goroutine", goroutine, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		if g.Metrics != nil {
			g.Metrics.Panics.WithLabelValues(g.Transport).Inc()
		}
		if onPanic != nil {
			g.Run(goroutine+" panic handler", onPanic, nil)
		}
	}()
	f()
}
