package wsconn

import (
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
