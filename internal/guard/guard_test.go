package guard

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/testlog"
)

func TestGuardRecovers(t *testing.T) {
	var logs testlog.Buffer
	m := metrics.New()
	g := Guard{Log: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: m, Transport: TransportSocketIO}
	tests := []struct {
		name       string
		f, onPanic func()
		panics     int
		handled    bool
	}{
		{"no panic", func() {}, nil, 0, false},
		{"panic", func() { panic("boom") }, nil, 1, true},
		{"runtime error", func() { _ = index(nil, 1) }, nil, 1, true},
		{"panic in the handler too", func() { panic("boom") }, func() { panic("again") }, 2, true},
	}
	total := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handled := false
			onPanic := func() { handled = true }
			if tt.onPanic != nil {
				onPanic = func() { handled = true; tt.onPanic() }
			}
			done := make(chan struct{})
			go func() { // a goroutine of its own: an unrecovered panic would end the test binary
				defer close(done)
				g.Run("reader", tt.f, onPanic)
			}()
			<-done
			total += tt.panics
			if handled != tt.handled {
				t.Fatalf("onPanic ran: %v, want %v", handled, tt.handled)
			}
			if got := testutil.ToFloat64(m.Panics.WithLabelValues(TransportSocketIO)); got != float64(total) {
				t.Fatalf("panics counted %v, want %d", got, total)
			}
			if got := strings.Count(logs.String(), `"msg":"connection goroutine panicked`); got != total {
				t.Fatalf("%d panic log lines, want %d: %s", got, total, logs.String())
			}
		})
	}
	if !strings.Contains(logs.String(), `"stack":"goroutine `) || !strings.Contains(logs.String(), `"transport":"socketio"`) {
		t.Fatalf("panic log without a stack or transport: %s", logs.String())
	}
}

func index(s []int, i int) int { return s[i] }
