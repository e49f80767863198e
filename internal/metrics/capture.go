package metrics

import "github.com/prometheus/client_golang/prometheus"

// CaptureMetrics are the change-capture metrics (internal/capture/postgres).
// Every field is nil-safe through the methods of *Metrics below.
type CaptureMetrics struct {
	// Active is 1 on the node that holds the capture lock and streams.
	Active prometheus.Gauge
	// Events counts captured events published, by kind.
	Events *prometheus.CounterVec
	// Refused counts changes not published as they are, by reason.
	Refused *prometheus.CounterVec
	// LagBytes is the server's WAL end minus the confirmed position.
	LagBytes prometheus.Gauge
	// LagSeconds is how long ago the newest published transaction
	// committed when it was published; 0 once the capture is caught up.
	LagSeconds prometheus.Gauge
	// ConfirmedLSN is the slot position this node confirmed, as a number.
	ConfirmedLSN prometheus.Gauge
	// Restarts counts capture sessions that ended in an error.
	Restarts prometheus.Counter
}

// Kinds for syncgate_capture_events_total.
const (
	CaptureInsert  = "insert"
	CaptureUpdate  = "update"
	CaptureDelete  = "delete"
	CaptureCleared = "cleared"
	CaptureDDL     = "ddl"
	CaptureMessage = "message"
)

// Reasons for syncgate_capture_refused_total.
const (
	RefusedName     = "name"      // schema or table breaks syncgate's name rules: skipped
	RefusedTooLarge = "too_large" // row over the event size limit: sent without its documents
	RefusedMessage  = "message"   // a pg_logical_emit_message event that is not a valid event: skipped
)

func newCaptureMetrics(r *prometheus.Registry) CaptureMetrics {
	c := CaptureMetrics{
		Active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncgate_capture_active", Help: "1 on the node that captures changes from PostgreSQL, else 0.",
		}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_capture_events_total", Help: "Events captured from PostgreSQL and published, by kind.",
		}, []string{"kind"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_capture_refused_total", Help: "Captured changes not published as they are, by reason.",
		}, []string{"reason"}),
		LagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncgate_capture_lag_bytes", Help: "WAL bytes between the server's end of WAL and the position confirmed to the slot.",
		}),
		LagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncgate_capture_lag_seconds", Help: "Commit-to-publish delay of the newest published transaction; 0 when caught up.",
		}),
		ConfirmedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncgate_capture_confirmed_lsn", Help: "The replication slot position this node confirmed (LSN as a number).",
		}),
		Restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncgate_capture_restarts_total", Help: "Capture sessions that ended in an error and were restarted.",
		}),
	}
	r.MustRegister(c.Active, c.Events, c.Refused, c.LagBytes, c.LagSeconds, c.ConfirmedLSN, c.Restarts)
	for _, k := range []string{CaptureInsert, CaptureUpdate, CaptureDelete, CaptureCleared, CaptureDDL, CaptureMessage} {
		c.Events.WithLabelValues(k)
	}
	for _, r := range []string{RefusedName, RefusedTooLarge, RefusedMessage} {
		c.Refused.WithLabelValues(r)
	}
	return c
}

// CaptureEvent counts n published captured events of kind.
func (m *Metrics) CaptureEvent(kind string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.Capture.Events.WithLabelValues(kind).Add(float64(n))
}

// CaptureRefused counts one refused change.
func (m *Metrics) CaptureRefused(reason string) {
	if m == nil {
		return
	}
	m.Capture.Refused.WithLabelValues(reason).Inc()
}

// CaptureActive sets whether this node captures.
func (m *Metrics) CaptureActive(on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.Capture.Active.Set(v)
}

// CapturePosition records the confirmed position and the lag behind the
// server's WAL end, both in bytes.
func (m *Metrics) CapturePosition(confirmed, serverEnd uint64) {
	if m == nil {
		return
	}
	m.Capture.ConfirmedLSN.Set(float64(confirmed))
	lag := 0.0
	if serverEnd > confirmed {
		lag = float64(serverEnd - confirmed)
	}
	m.Capture.LagBytes.Set(lag)
}

// CaptureLag records the commit-to-publish delay in seconds.
func (m *Metrics) CaptureLag(seconds float64) {
	if m == nil {
		return
	}
	m.Capture.LagSeconds.Set(max(seconds, 0))
}

// CaptureRestart counts a capture session that ended in an error.
func (m *Metrics) CaptureRestart() {
	if m == nil {
		return
	}
	m.Capture.Restarts.Inc()
}
