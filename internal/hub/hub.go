package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
)

// TokenVerifier checks a client token; *auth.Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*auth.Claims, error)
}

// Config configures a Hub: the node's limits, which every transport shares.
// A zero field means its documented default; a negative one is an error
// (New refuses it).
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

// Validate names the first bad field and its value: every limit and
// duration is zero (its default) or positive, and MaxConnections zero (no
// limit) or positive.
func (c *Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxSubscriptions", int64(c.MaxSubscriptions)},
		{"MaxQueueBytes", int64(c.MaxQueueBytes)},
		{"MaxPendingEvents", int64(c.MaxPendingEvents)},
		{"MaxMessageBytes", c.MaxMessageBytes},
		{"MaxConnections", int64(c.MaxConnections)},
	} {
		if f.v < 0 {
			return fmt.Errorf("hub: Config.%s=%d: must not be negative", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"AuthTimeout", c.AuthTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"PingInterval", c.PingInterval},
	} {
		if f.v < 0 {
			return fmt.Errorf("hub: Config.%s=%s: must not be negative", f.name, f.v)
		}
	}
	return nil
}

// setDefaults fills the zero fields of a validated Config.
func (c *Config) setDefaults() {
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = 100
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = 8 << 20
	}
	if c.MaxPendingEvents == 0 {
		c.MaxPendingEvents = 10000
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
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

	// The fan-out queue: Receive and Reset queue their work in arrival
	// order and return; one goroutine (started while there is work, like a
	// session's writer) delivers it, so the backplane's caller — a
	// publishing request on the memory backplane — does not pay for the
	// fan-out. When fanJobs is full, Receive waits: the queue is bounded.
	fanJobs chan fanJob
	fanning atomic.Bool

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
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.History == nil {
		cfg.History = backplane.NewHistoryReader(bp, backplane.HistoryReaderConfig{Metrics: cfg.Metrics})
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &Hub{cfg: cfg, bp: bp, log: cfg.Logger, m: cfg.Metrics, nodeID: hex.EncodeToString(b[:]),
		sessions: make(map[*Session]struct{}), fanJobs: make(chan fanJob, fanQueue)}
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

// fanQueue bounds the fan-out queue, in events (and Resets).
const fanQueue = 4096

// fanJob is one queued event (m) or Reset (m nil) for the subscribers of
// its stream at the time it arrived; done, when set, is closed instead (a
// marker: everything before it was delivered).
type fanJob struct {
	subs []*Subscription
	m    *Message
	bad  uint8 // encodings of m that failed (bit per Encoding)
	head backplane.Offset
	done chan struct{}
}

// Receive implements backplane.Receiver: the backplane parsed the offset
// once; the event is encoded once per encoding its subscribers use, here,
// and queued for the fan-out. It waits only when the queue is full.
func (h *Hub) Receive(s backplane.Stream, off backplane.Offset, ev *syncgate.Event) {
	subs, encs := h.shard(s).subscribersEnc(s)
	if len(subs) == 0 {
		return
	}
	m := newMessage(off, ev)
	var bad uint8
	for e := Encoding(0); e < maxEncodings; e++ {
		if encs&(1<<e) == 0 {
			continue
		}
		if err := m.encode(ev, e); err != nil {
			h.log.Warn("dropping undeliverable event from backplane", "stream", s.String(), "err", err)
			bad |= 1 << e
		}
	}
	h.queueFan(fanJob{subs: subs, m: m, bad: bad})
}

// Reset implements backplane.Receiver: every subscription of s learns that
// events up to head may be lost (its transport's Gap), unless it already
// passed head; during a replay, when the replay ends. It is queued behind
// the events received before it.
func (h *Hub) Reset(s backplane.Stream, head backplane.Offset) {
	if subs := h.shard(s).subscribers(s); len(subs) > 0 {
		h.queueFan(fanJob{subs: subs, head: head})
	}
}

// queueFan queues j and makes sure the fan-out goroutine runs.
func (h *Hub) queueFan(j fanJob) {
	h.fanJobs <- j
	if h.fanning.CompareAndSwap(false, true) {
		go h.fanLoop()
	}
}

// fanLoop delivers queued jobs in order and ends when the queue is empty.
func (h *Hub) fanLoop() {
	for {
		select {
		case j := <-h.fanJobs:
			h.fanout(j)
		default:
			h.fanning.Store(false)
			// A job queued after the receive above but before the store
			// found fanning true and started no goroutine: take it on.
			if len(h.fanJobs) == 0 || !h.fanning.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// fanout enqueues the same bytes to every subscriber of j, or tells them
// of its Reset.
func (h *Hub) fanout(j fanJob) {
	switch {
	case j.done != nil:
		close(j.done)
	case j.m == nil:
		for _, sub := range j.subs {
			sub.sess.reset(sub, j.head)
		}
	default:
		for _, sub := range j.subs {
			if j.bad&(1<<sub.enc) != 0 {
				h.dropped(dropInvalid)
				continue
			}
			sub.sess.deliver(sub, j.m)
		}
	}
}

// Delivered returns once every event and Reset received before the call
// was handed to its subscribers' sessions, or when ctx ends.
func (h *Hub) Delivered(ctx context.Context) {
	done := make(chan struct{})
	select {
	case h.fanJobs <- fanJob{done: done}:
	case <-ctx.Done():
		return
	}
	if h.fanning.CompareAndSwap(false, true) {
		go h.fanLoop()
	}
	select {
	case <-done:
	case <-ctx.Done():
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
