package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/transport/ws"
)

// Limits of the publish endpoint (SPEC.md).
const (
	MaxPublishBody   = 1 << 20
	MaxPublishEvents = 1000
)

// Publisher is the part of the backplane the publish endpoint needs.
type Publisher interface {
	Publish(ctx context.Context, events []syncgate.Event) ([]string, error)
}

// Config is what the HTTP surface serves.
type Config struct {
	// Hub is the node's session engine: /readyz reports its drain.
	Hub *hub.Hub
	// WS serves /v1/ws; default the native transport over Hub
	// (internal/transport/ws).
	WS http.Handler
	// SocketIO, when set, serves the Socket.IO-compatible endpoint at
	// /socket.io/ (internal/transport/socketio).
	SocketIO http.Handler
	// SSE, when set, serves Server-Sent Events at GET /v1/sse
	// (internal/transport/sse).
	SSE       http.Handler
	Publisher Publisher
	// Ready reports backplane readiness; nil means always ready.
	Ready func() error
	// Keys are the publish keys; with none, publishing is refused.
	Keys auth.Keys
	// Metrics, when set, is served on /metrics unless MetricsSeparate.
	Metrics         *metrics.Metrics
	MetricsSeparate bool
	// Extra mounts additional handlers (e.g. the development demo page at "/").
	Extra  map[string]http.Handler
	Logger *slog.Logger
}

// Handler returns the gateway's router.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &srv{cfg: cfg}
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	r.Get("/readyz", s.readyz)
	// Upgraded connections leave the edge timeouts behind (net/http clears
	// the deadlines on hijack) and call edge.Authenticated once their
	// token verified. A streaming response (the coming /v1/sse) must call
	// edge.Stream(w) before streaming and edge.Authenticated(r.Context())
	// once its token verified (see internal/edge).
	if cfg.WS == nil {
		cfg.WS = ws.New(cfg.Hub)
	}
	r.Get("/v1/ws", cfg.WS.ServeHTTP)
	if cfg.SSE != nil {
		r.Get("/v1/sse", cfg.SSE.ServeHTTP)
	}
	if cfg.SocketIO != nil {
		r.Handle("/socket.io/*", cfg.SocketIO)
	}
	r.Post("/v1/publish", s.publish)
	if cfg.Metrics != nil && !cfg.MetricsSeparate {
		r.Handle("/metrics", MetricsHandler(cfg.Metrics))
	}
	for pattern, h := range cfg.Extra {
		r.Handle(pattern, h)
	}
	return r
}

// MetricsHandler serves m's registry.
func MetricsHandler(m *metrics.Metrics) http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

type srv struct {
	cfg Config
}

func (s *srv) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.cfg.Hub.Draining() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining\n")
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "backplane not ready: %v\n", err)
			return
		}
	}
	_, _ = io.WriteString(w, "ready\n")
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *srv) fail(w http.ResponseWriter, status int, code, msg string) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.PublishRequests.WithLabelValues(strconv.Itoa(status)).Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error apiError `json:"error"`
	}{apiError{code, msg}})
}

// publish handles POST /v1/publish: one event or {"events":[...]}, all
// validated before any is published.
func (s *srv) publish(w http.ResponseWriter, r *http.Request) {
	key := auth.BearerToken(r.Header.Get("Authorization"))
	if !s.cfg.Keys.Check(key) {
		if s.cfg.Metrics != nil {
			reason := "publish_key"
			if key == "" {
				reason = "publish_key_missing"
			}
			s.cfg.Metrics.AuthFailures.WithLabelValues(reason).Inc()
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="syncgate publish"`)
		s.fail(w, http.StatusUnauthorized, "unauthorized", "missing or unknown publish key")
		return
	}
	edge.Authenticated(r.Context())
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPublishBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, http.StatusRequestEntityTooLarge, "limit_exceeded", fmt.Sprintf("body exceeds %d bytes", MaxPublishBody))
			return
		}
		s.fail(w, http.StatusBadRequest, "bad_request", "reading body: "+err.Error())
		return
	}
	// The body is in: the read deadline (edge.Config.BodyTimeout) has
	// done its job, and must not end the request while the backplane
	// answers (net/http's background read would cancel its context).
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	events, err := DecodePublish(body)
	if err != nil {
		status, code := http.StatusBadRequest, "bad_request"
		if errors.Is(err, errTooMany) {
			status, code = http.StatusRequestEntityTooLarge, "limit_exceeded"
		}
		s.fail(w, status, code, err.Error())
		return
	}
	offsets, err := s.cfg.Publisher.Publish(r.Context(), events)
	if err != nil {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.BackplanePublishErrs.Inc()
		}
		s.cfg.Logger.Warn("publish failed", "request_id", middleware.GetReqID(r.Context()), "events", len(events), "err", err)
		if errors.Is(err, backplane.ErrUnavailable) {
			w.Header().Set("Retry-After", "1")
			s.fail(w, http.StatusServiceUnavailable, "unavailable", "backplane unavailable; nothing was published")
			return
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// The request may have reached the backplane: the outcome is
			// unknown, so this is not the "nothing published" 503.
			s.fail(w, http.StatusGatewayTimeout, "timeout", "backplane did not answer in time; the events may have been published")
			return
		}
		s.fail(w, http.StatusInternalServerError, "internal", "publish failed")
		return
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.EventsPublished.Add(float64(len(events)))
		s.cfg.Metrics.PublishRequests.WithLabelValues("200").Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Offsets []string `json:"offsets"`
	}{offsets})
}

var errTooMany = errors.New("too many events")

// DecodePublish parses a publish body (one event or {"events":[...]}) and
// validates every event; any invalid event fails the whole body, naming its
// index. Timestamps left empty are set to now.
func DecodePublish(body []byte) ([]syncgate.Event, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %v", err)
	}
	var raws []json.RawMessage
	batch := false
	if rawEvents, ok := probe["events"]; ok {
		if len(probe) != 1 || countKeys(body) != 1 {
			return nil, errors.New(`a batch body has only the field "events", once`)
		}
		if err := json.Unmarshal(rawEvents, &raws); err != nil {
			return nil, fmt.Errorf("events must be an array of event objects: %v", err)
		}
		if len(raws) == 0 {
			return nil, errors.New("events is empty")
		}
		if len(raws) > MaxPublishEvents {
			return nil, fmt.Errorf("%w: %d events in one batch, at most %d", errTooMany, len(raws), MaxPublishEvents)
		}
		batch = true
	} else {
		raws = []json.RawMessage{body}
	}
	now := time.Now().UTC()
	events := make([]syncgate.Event, len(raws))
	for i, raw := range raws {
		ev, err := syncgate.DecodeEvent(raw)
		if err == nil {
			err = ev.Validate()
		}
		if err == nil && ev.Timestamp.IsZero() {
			ev.Timestamp = now
		}
		if err == nil {
			_, err = ev.Encode() // size limit
		}
		if err != nil {
			if batch {
				return nil, fmt.Errorf("events[%d]: %v (nothing was published)", i, err)
			}
			return nil, err
		}
		events[i] = ev
	}
	return events, nil
}

// countKeys returns how many fields the JSON object body has, duplicates
// included (a map counts a duplicate once, keeping the last), or -1 when it
// is not an object.
func countKeys(body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return -1
	}
	n := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil {
			return -1
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return -1
		}
		n++
	}
	return n
}
