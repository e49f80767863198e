package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// TokenVerifier checks a client token; *auth.Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*auth.Claims, error)
}

// Config configures a Hub. A zero field means its documented default.
type Config struct {
	// Verifier checks client tokens. Required.
	Verifier TokenVerifier
	// MaxSubscriptions per connection; default 100.
	MaxSubscriptions int
	// MaxQueueBytes bounds a connection's outbound queue; a connection whose
	// queue would exceed it is closed with 4008. Default 8 MiB.
	MaxQueueBytes int
	// MaxPendingEvents bounds the live events buffered for one subscription
	// while its history is replayed; default 10,000.
	MaxPendingEvents int
	// MaxMessageBytes is the largest client frame; larger frames close the
	// connection with 1009. Default 64 KiB.
	MaxMessageBytes int64
	// MaxConnections this node accepts before answering 1013; 0 is no limit.
	MaxConnections int
	// AuthTimeout is how long a connection may stay unauthenticated; 10s.
	AuthTimeout time.Duration
	// WriteTimeout bounds every socket write; default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often the server pings idle clients; default 25s.
	PingInterval time.Duration
	// OriginPatterns are the allowed browser origins (host patterns as in
	// path.Match, e.g. "app.example.com" or "*.example.com"); empty means
	// same origin only. "*" allows every origin.
	OriginPatterns []string
	// History is the node's gate for history reads (resume), shared with
	// the node's other transports so that its budget is node-wide;
	// default one of its own over the hub's backplane, with the default
	// budget.
	History *backplane.HistoryReader
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *metrics.Metrics
}

func (c *Config) setDefaults() {
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 100
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 8 << 20
	}
	if c.MaxPendingEvents <= 0 {
		c.MaxPendingEvents = 10000
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Hub is one node's set of connections and subscriptions.
type Hub struct {
	cfg    Config
	bp     backplane.Backplane
	log    *slog.Logger
	m      *metrics.Metrics
	nodeID string
	nextID atomic.Uint64
	shards [numShards]shard
	guard  wsconn.Guard

	mu       sync.Mutex // guards conns and draining
	conns    map[*conn]struct{}
	draining bool
	wg       sync.WaitGroup // one per live connection
}

var _ backplane.Receiver = (*Hub)(nil)

// New returns a hub that serves subscriptions from bp. The caller starts bp
// with the hub as its Receiver (see Start).
func New(cfg Config, bp backplane.Backplane) (*Hub, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("hub: Config.Verifier is required")
	}
	cfg.setDefaults()
	if cfg.History == nil {
		cfg.History = backplane.NewHistoryReader(bp, backplane.HistoryReaderConfig{Metrics: cfg.Metrics})
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &Hub{cfg: cfg, bp: bp, log: cfg.Logger, m: cfg.Metrics, nodeID: hex.EncodeToString(b[:]), conns: make(map[*conn]struct{}),
		guard: wsconn.Guard{Log: cfg.Logger, Metrics: cfg.Metrics, Transport: wsconn.TransportWS}}
	for i := range h.shards {
		h.shards[i].streams = make(map[backplane.Stream][]*subscription)
	}
	return h, nil
}

// Start starts the backplane's delivery into the hub.
func (h *Hub) Start(ctx context.Context) error {
	return h.bp.Start(ctx, h)
}

// message is one event encoded once for every subscriber on this node.
type message struct {
	off  backplane.Offset
	data []byte // the event's JSON, offset included
	aud  *syncgate.Audience
	ts   time.Time
}

// Receive implements backplane.Receiver: encode once, enqueue everywhere.
func (h *Hub) Receive(s backplane.Stream, off backplane.Offset, ev *syncgate.Event) {
	subs := h.shard(s).subscribers(s)
	if len(subs) == 0 {
		return
	}
	m, err := newMessage(off, ev)
	if err != nil {
		h.log.Warn("dropping undeliverable event from backplane", "stream", s.String(), "err", err)
		if h.m != nil {
			h.m.EventsDropped.WithLabelValues(metrics.DropInvalid).Add(float64(len(subs)))
		}
		return
	}
	for _, sub := range subs {
		sub.conn.deliver(sub, m)
	}
}

func newMessage(off backplane.Offset, ev *syncgate.Event) (*message, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding event: %w", err)
	}
	return &message{off: off, data: data, aud: ev.Audience, ts: ev.Timestamp}, nil
}

// Reset implements backplane.Receiver: every subscription of s gets a fresh
// `subscribed` frame with recovered=false and continues live after head.
func (h *Hub) Reset(s backplane.Stream, head backplane.Offset) {
	for _, sub := range h.shard(s).subscribers(s) {
		sub.conn.reset(sub, head)
	}
}

// Connections returns the number of open connections.
func (h *Hub) Connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// register adds c unless the node drains or is full; it returns the close
// code to refuse with, or 0.
func (h *Hub) register(c *conn) CloseCode {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return CloseServiceRestart
	}
	if h.cfg.MaxConnections > 0 && len(h.conns) >= h.cfg.MaxConnections {
		return CloseTryAgainLater
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	if h.m != nil {
		h.m.Connections.Inc()
	}
	return 0
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	if h.m != nil {
		h.m.Connections.Dec()
	}
	h.wg.Done()
}

// Draining reports whether Drain has begun.
func (h *Hub) Draining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// Drain refuses new connections and closes every live one with 1012,
// spreading the closes over most of grace so clients do not all reconnect
// elsewhere in one instant. Each connection's queued events are written
// before its close. Drain returns when all connections are gone, or when
// ctx ends, after which the remaining ones are closed at once.
func (h *Hub) Drain(ctx context.Context, grace time.Duration) error {
	h.mu.Lock()
	h.draining = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()

	spread := grace * 8 / 10
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i, c := range conns {
		if d := time.Until(start.Add(spread * time.Duration(i) / time.Duration(len(conns)))); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		c.requestClose(CloseServiceRestart, "service restart", true)
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		h.mu.Lock()
		for c := range h.conns {
			c.sock.Cut()
		}
		h.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
