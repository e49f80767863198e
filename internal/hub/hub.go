package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
)

// TokenVerifier checks a client token; *auth.Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*auth.Claims, error)
}

// Config configures a Hub: the node's limits, which every transport shares.
// A zero field means its documented default.
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
	// MaxMessageBytes is the largest client frame a transport accepts
	// (Socket.IO advertises it as maxPayload); larger frames close the
	// connection with 1009. Default 64 KiB.
	MaxMessageBytes int64
	// MaxConnections this node accepts, over every transport together,
	// before refusing with 1013; 0 is no limit.
	MaxConnections int
	// AuthTimeout is how long a connection may stay unauthenticated; 10s.
	AuthTimeout time.Duration
	// WriteTimeout bounds every write to a client; default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often transports check idle clients (WebSocket
	// ping, Engine.IO ping, SSE keep-alive); default 25s.
	PingInterval time.Duration
	// OriginPatterns are the allowed browser origins (host patterns as in
	// path.Match, e.g. "app.example.com" or "*.example.com"); empty means
	// same origin only. "*" allows every origin.
	OriginPatterns []string
	// History is the node's gate for history reads (resume); default one
	// of its own over the hub's backplane, with the default budget.
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

// Hub is the node's session engine: every connection of every transport,
// their subscriptions, and the fan-out of backplane events to them.
type Hub struct {
	cfg    Config
	bp     backplane.Backplane
	log    *slog.Logger
	m      *metrics.Metrics
	nodeID string
	nextID atomic.Uint64
	shards [numShards]shard

	mu       sync.Mutex // guards sessions and draining
	sessions map[*Session]struct{}
	draining bool
	wg       sync.WaitGroup // one per registered session
}

var _ backplane.Receiver = (*Hub)(nil)

// New returns a hub that serves subscriptions from bp. The caller starts bp
// with the hub as its Receiver (Start).
func New(cfg Config, bp backplane.Backplane) (*Hub, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("hub: Config.Verifier is required")
	}
	if bp == nil {
		return nil, errors.New("hub: a backplane is required")
	}
	cfg.setDefaults()
	if cfg.History == nil {
		cfg.History = backplane.NewHistoryReader(bp, backplane.HistoryReaderConfig{Metrics: cfg.Metrics})
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &Hub{cfg: cfg, bp: bp, log: cfg.Logger, m: cfg.Metrics, nodeID: hex.EncodeToString(b[:]),
		sessions: make(map[*Session]struct{})}
	for i := range h.shards {
		h.shards[i].streams = make(map[backplane.Stream][]*Subscription)
	}
	return h, nil
}

// Config returns the hub's configuration with its defaults filled in; the
// transports read their shared settings from it.
func (h *Hub) Config() Config { return h.cfg }

// Start starts the backplane's delivery into the hub.
func (h *Hub) Start(ctx context.Context) error {
	return h.bp.Start(ctx, h)
}

// Receive implements backplane.Receiver: parse the offset once, then fan
// out. It never blocks.
func (h *Hub) Receive(s backplane.Stream, ev *syncgate.Event) {
	subs := h.shard(s).subscribers(s)
	if len(subs) == 0 {
		return
	}
	m, err := newMessage(ev)
	if err != nil {
		h.log.Warn("dropping undeliverable event from backplane", "stream", s.String(), "err", err)
		if h.m != nil {
			h.m.EventsDropped.WithLabelValues(metrics.DropInvalid).Add(float64(len(subs)))
		}
		return
	}
	h.fanout(subs, m, ev)
}

// fanout encodes m once per encoding its subscribers use and enqueues the
// same bytes to every one of them.
func (h *Hub) fanout(subs []*Subscription, m *Message, ev *syncgate.Event) {
	for _, sub := range subs {
		if err := m.encode(ev, sub.enc); err != nil {
			h.log.Warn("dropping undeliverable event from backplane", "stream", sub.key.Stream.String(), "err", err)
			h.dropped(dropInvalid)
			continue
		}
		sub.sess.deliver(sub, m)
	}
}

// Reset implements backplane.Receiver: every subscription of s learns that
// events up to head may be lost (its transport's Gap), unless it already
// passed head; during a replay, when the replay ends.
func (h *Hub) Reset(s backplane.Stream, head string) {
	off, err := backplane.ParseOffset(head)
	if err != nil {
		h.log.Error("backplane reset with bad head offset", "stream", s.String(), "err", err)
		return
	}
	for _, sub := range h.shard(s).subscribers(s) {
		sub.sess.reset(sub, off)
	}
}

// Verify checks a client token with the node's verifier and counts a
// refusal in syncgate_auth_failures_total.
func (h *Hub) Verify(ctx context.Context, token string) (*auth.Claims, error) {
	claims, err := h.cfg.Verifier.Verify(ctx, token)
	if err != nil {
		h.AuthFailed(err)
	}
	return claims, err
}

// AuthFailed counts a refused credential by its reason.
func (h *Hub) AuthFailed(err error) {
	if h.m != nil {
		r := auth.Reason(err)
		if r == "" {
			r = "other"
		}
		h.m.AuthFailures.WithLabelValues(r).Inc()
	}
}

// ClientMessage counts one client message by op (the transport's own
// names; unknown ones as "invalid").
func (h *Hub) ClientMessage(op string) {
	if h.m != nil {
		h.m.ClientMessages.WithLabelValues(op).Inc()
	}
}

// Drop reasons, as metrics names them.
const (
	dropAudience   = metrics.DropAudience
	dropDuplicate  = metrics.DropDuplicate
	dropSlowClient = metrics.DropSlowClient
	dropInvalid    = metrics.DropInvalid
	dropClosing    = metrics.DropClosing
)

func (h *Hub) dropped(reason string) {
	if h.m != nil {
		h.m.EventsDropped.WithLabelValues(reason).Inc()
	}
}
