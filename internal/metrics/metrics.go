// Package metrics defines syncgate's Prometheus metrics. The names are part of
// the contract (dashboards and alerts depend on them); labels are bounded
// enumerations, never a project, user or collection.
//
// A *Metrics is safe for concurrent use. A nil *Metrics is valid and records
// nothing, so packages can be tested without a registry.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/syncgate/syncgate/internal/auth"
)

// Metrics holds every collector of one gateway process.
type Metrics struct {
	Registry *prometheus.Registry

	Connections          *prometheus.GaugeVec
	Subscriptions        *prometheus.GaugeVec
	EventsPublished      prometheus.Counter
	EventsDelivered      prometheus.Counter
	EventsDropped        *prometheus.CounterVec
	BatchSize            prometheus.Histogram
	DeliveryLatency      prometheus.Histogram
	SlowConsumers        *prometheus.CounterVec
	AuthFailures         *prometheus.CounterVec
	ClientMessages       *prometheus.CounterVec
	PublishRequests      *prometheus.CounterVec
	BackplaneUp          prometheus.Gauge
	BackplaneReconnects  prometheus.Counter
	BackplanePublishErrs prometheus.Counter
	BackplaneStalls      prometheus.Counter
	Disconnects          *prometheus.CounterVec
	WebhookCalls         *prometheus.CounterVec
	WebhookLatency       prometheus.Histogram
	HistoryBytesInFlight prometheus.Gauge
	HistoryReads         *prometheus.CounterVec
	Panics               *prometheus.CounterVec

	// Capture: change capture from PostgreSQL (capture.go).
	Capture CaptureMetrics
}

// Transports are the values of the `transport` label (the engine's
// transports: internal/hub).
var Transports = []string{"ws", "socketio", "sse"}

// Kinds for syncgate_history_reads_total.
const (
	HistoryRead   = "read"   // a page read from the backplane
	HistoryShared = "shared" // a page another resumer's read answered
)

// Reasons for syncgate_events_dropped_total.
const (
	DropAudience   = "audience"      // not for this connection's user or roles
	DropDuplicate  = "duplicate"     // offset already delivered on the subscription
	DropSlowClient = "slow_consumer" // discarded with a slow consumer's queue
	DropInvalid    = "invalid"       // a malformed event arrived from the backplane
	DropClosing    = "closing"       // the connection was closing
)

// New registers every metric, plus the Go runtime and process collectors, on
// a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncgate_connections", Help: "Client connections currently open on this node, by transport (ws, socketio, sse).",
		}, []string{"transport"}),
		Subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncgate_subscriptions", Help: "Subscriptions currently active on this node, by transport.",
		}, []string{"transport"}),
		EventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncgate_events_published_total", Help: "Events accepted for publishing through this node.",
		}),
		EventsDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncgate_events_delivered_total", Help: "Events written to client sockets (one per event per subscription).",
		}),
		EventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_events_dropped_total", Help: "Events not delivered to a subscription, by reason.",
		}, []string{"reason"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "syncgate_batch_size_events", Help: "Events per outbound events frame.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "syncgate_delivery_latency_seconds", Help: "Time from an event's publish timestamp to its socket write.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		SlowConsumers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_slow_consumer_disconnects_total", Help: "Connections closed with 4008, by transport: their queue overflowed, or they read nothing for the write timeout.",
		}, []string{"transport"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_auth_failures_total", Help: "Refused client tokens and publish keys, by reason.",
		}, []string{"reason"}),
		ClientMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_client_messages_total", Help: "Messages received from clients, by op (unknown ops count as \"invalid\").",
		}, []string{"op"}),
		PublishRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_publish_requests_total", Help: "HTTP publish requests, by status code.",
		}, []string{"code"}),
		BackplaneUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncgate_backplane_up", Help: "1 when the backplane is reachable, 0 when not.",
		}),
		BackplaneReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncgate_backplane_reconnects_total", Help: "Times the backplane's subscription connection was re-established.",
		}),
		BackplanePublishErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncgate_backplane_publish_errors_total", Help: "Publishes that failed in the backplane.",
		}),
		BackplaneStalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncgate_backplane_stalls_total", Help: "Probe messages that did not come back through pub/sub in time.",
		}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_disconnects_total", Help: "Client connections ended, once each, by the close code the server sent (1006: cut without a close frame; peer: the client closed or went away first).",
		}, []string{"code"}),
		WebhookCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_auth_webhook_calls_total",
			Help: "Authentication webhook calls, by outcome (ok, refused, status, malformed, timeout, error; busy: not sent, no free slot in time).",
		}, []string{"outcome"}),
		WebhookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "syncgate_auth_webhook_duration_seconds", Help: "Time from sending an authentication webhook call to its answer (or failure).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		HistoryBytesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncgate_history_bytes_in_flight", Help: "Bytes of history pages being read or held for resuming clients (bounded by the history read budget).",
		}),
		HistoryReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_history_reads_total", Help: "History pages served to resuming clients: read from the backplane, or shared with another resumer's read.",
		}, []string{"kind"}),
		Panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncgate_panics_total", Help: "Panics recovered in connection goroutines (each closed its connection with 1011), by transport.",
		}, []string{"transport"}),
	}
	r.MustRegister(
		m.Connections, m.Subscriptions, m.EventsPublished, m.EventsDelivered, m.EventsDropped,
		m.BatchSize, m.DeliveryLatency, m.SlowConsumers, m.AuthFailures, m.ClientMessages,
		m.PublishRequests, m.BackplaneUp, m.BackplaneReconnects, m.BackplanePublishErrs,
		m.BackplaneStalls, m.Disconnects, m.WebhookCalls, m.WebhookLatency,
		m.HistoryBytesInFlight, m.HistoryReads, m.Panics,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.Capture = newCaptureMetrics(r) // change capture from PostgreSQL (capture.go)
	// Export every known label value from the start, so rate() and alerts
	// see a zero before the first increment.
	for _, r := range []string{DropAudience, DropDuplicate, DropSlowClient, DropInvalid, DropClosing} {
		m.EventsDropped.WithLabelValues(r)
	}
	for _, t := range Transports {
		m.Panics.WithLabelValues(t)
		m.Connections.WithLabelValues(t)
		m.Subscriptions.WithLabelValues(t)
		m.SlowConsumers.WithLabelValues(t)
	}
	for _, k := range []string{HistoryRead, HistoryShared} {
		m.HistoryReads.WithLabelValues(k)
	}
	for _, r := range []string{"missing", "malformed", "signature", "expired", "unknown_key", "claims", "refused", "unavailable", "publish_key", "publish_key_missing"} {
		m.AuthFailures.WithLabelValues(r)
	}
	for _, o := range auth.Outcomes {
		m.WebhookCalls.WithLabelValues(o)
	}
	return m
}

// WebhookCall records one authentication webhook call; auth.WebhookMetrics.
// A call that was never sent (outcome busy) counts but has no latency.
func (m *Metrics) WebhookCall(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.WebhookCalls.WithLabelValues(outcome).Inc()
	if outcome != auth.OutcomeBusy {
		m.WebhookLatency.Observe(d.Seconds())
	}
}

// ObserveLatency records the time from publish to now for a delivered event.
func (m *Metrics) ObserveLatency(published, now time.Time) {
	if m == nil || published.IsZero() {
		return
	}
	d := now.Sub(published)
	if d < 0 {
		d = 0 // publisher clocks may run ahead
	}
	m.DeliveryLatency.Observe(d.Seconds())
}
