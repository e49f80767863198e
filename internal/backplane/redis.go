package backplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/redisfn"
)

// Redis joins gateway nodes through Redis: history in streams, live
// delivery over sharded pub/sub, an epoch per project to detect data loss.
// docs/redis.md describes the keys, channels and the publish function.
//
// Delivery: each pub/sub connection (one on a single Redis; one per project
// on Redis Cluster, whose channels live on the project's slot) is read by
// one goroutine, which hands events to the Receiver in channel order, that
// is offset order. Every reconnection, and every stall the probe finds,
// is treated as a gap: each active stream is refilled from history after
// the last offset delivered, live events for it being held back meanwhile.
//
// Files: redis.go (this type, lifecycle, publish, history),
// redis_subscribe.go (reference-counted subscriptions and their
// confirmations), redis_deliver.go (the pub/sub reading loops and delivery
// to the Receiver), redis_fill.go (gap fill from history), redis_probe.go
// (probe, health, rebuild of a stalled connection), redis_library.go (the
// Redis Function library, through internal/redisfn).
//
// Lock order — a goroutine holding one of these may take only those below
// it:
//
//  1. chanState.dmu: one stream's delivery. Held while the Receiver is
//     called for that stream (by the stream's connection loop or its fill),
//     so the stream's events reach it in offset order. Never taken with
//     subMu or mu held.
//  2. subMu: subscription writes and connection rebuilds.
//  3. mu: all state. Never held across a network call or a Receiver call.
//
// The Receiver is therefore called with no backplane lock but dmu held: it
// may call back into the backplane (Unsubscribe, Ready, History, Publish, a
// Subscribe of a stream it already receives). It must still not block: a
// Subscribe that waits for Redis to confirm a new channel, made from inside
// Receive, waits for the very loop that is calling it.
type Redis struct {
	cfg     RedisConfig
	cmd     redis.UniversalClient // commands: publish, probes
	sub     redis.UniversalClient // pub/sub connections
	hist    redis.UniversalClient // history reads, on a pool of their own
	cluster bool
	log     *slog.Logger
	m       *metrics.Metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	subMu sync.Mutex

	mu      sync.Mutex
	recv    Receiver
	started bool
	closed  bool
	groups  map[string]*psGroup
	cmdErr  error // last result of the command-connection ping
	up      bool  // last value of BackplaneUp

	fillBytes int // bytes held in every stream's fill buffer

	limitsWarned atomic.Bool // warned once that another gateway's limits apply
	newerWarned  atomic.Bool // logged once that a newer library stays
}

// psGroup is one pub/sub connection and the channels it carries.
type psGroup struct {
	key      string // the project on Redis Cluster; "" on a single Redis
	ps       *redis.PubSub
	gen      int // incremented when ps is replaced
	probeCh  string
	channels map[string]*chanState

	probeConfirms int // subscription confirmations of probeCh on ps
	probeToken    string
	probeSent     time.Time
	probeSeq      uint64
	stalled       bool  // a probe timed out; cleared when one returns
	unreachable   error // the last probe could not be sent
	rebuilding    bool

	// unsubscribing holds the channels whose SUNSUBSCRIBE is in flight
	// outside subMu; a Subscribe to one waits for it, so the two commands
	// reach Redis in the order of the state changes.
	unsubscribing map[string]chan struct{}
}

// chanState is one subscribed channel on this node.
type chanState struct {
	dmu sync.Mutex // delivery of s; see the lock order on Redis

	s         Stream
	refs      int // local subscriptions
	sent      int // SSUBSCRIBE commands written
	confirmed int // of those, confirmed
	waiters   []*subWaiter

	hasLast bool
	last    Offset // newest offset handed to the Receiver

	filling  bool // a history fill runs; live events go to buf
	refill   bool // fill again when the running fill ends
	overflow bool // buf overflowed during the fill
	buf      []liveEvent
	bufBytes int
}

var (
	_ Backplane = (*Redis)(nil)
	_ Checker   = (*Redis)(nil)
)

// NewRedis returns a Redis backplane. It does not connect; Start does.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	target, err := redisfn.ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	cmd, sub, hist := newClients(target, cfg.ReconnectMin, cfg.ReconnectMax)
	ctx, cancel := context.WithCancel(context.Background())
	return &Redis{
		cfg: cfg, cmd: cmd, sub: sub, hist: hist, cluster: target.Cluster != nil,
		log: cfg.Logger.With("backplane", "redis"), m: cfg.Metrics,
		ctx: ctx, cancel: cancel, groups: make(map[string]*psGroup),
	}, nil
}

// Start installs the function library (replacing an older one, so the
// history limits are this node's), checks its version, opens the pub/sub
// connection and starts the probe. A Redis that cannot be reached does not
// fail Start: the node runs not ready and catches up when Redis answers.
// A Redis that answers but cannot run the library (older than 7.0) does.
//
// ctx bounds Start only: delivery and publishing go on until Close, so a
// draining node (whose signal context has ended) still delivers to the
// clients it has not closed yet and finishes in-flight publishes, which
// would otherwise fail after they may have run.
func (b *Redis) Start(ctx context.Context, r Receiver) error {
	b.mu.Lock()
	if b.started || b.closed {
		b.mu.Unlock()
		return errors.New("redis backplane: Start called twice or after Close")
	}
	b.started = true
	b.recv = r
	b.mu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := b.loadAndVerify(lctx)
	cancel()
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		b.log.Warn("redis unreachable at start; serving not ready until it answers", "err", err)
		b.mu.Lock()
		b.cmdErr = err
		b.mu.Unlock()
	}
	if !b.cluster {
		b.subMu.Lock()
		b.newGroup("")
		b.subMu.Unlock()
	}
	b.wg.Add(1)
	go b.probeLoop()
	b.updateUp()
	return nil
}

// Publish implements Backplane: one atomic function call per project on
// Redis Cluster, one for the whole batch on a single Redis. Its errors wrap
// ErrUnavailable only when nothing was published; when the call may have
// run they wrap context.DeadlineExceeded (or Canceled) instead.
func (b *Redis) Publish(ctx context.Context, events []syncgate.Event) ([]string, error) {
	return b.publish(ctx, events, nil)
}

// publish is Publish, and PublishAt with at set.
func (b *Redis) publish(ctx context.Context, events []syncgate.Event, at *positions) ([]string, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("publish: %w: closed", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	enc, err := redisfn.Encode(events, time.Now())
	if err != nil {
		return nil, err
	}
	var fat *redisfn.At
	if at != nil {
		fat = &redisfn.At{Source: at.source, Positions: at.pos}
	}
	offsets, err := redisfn.Publish(ctx, b.cmd, enc, fat, b.load)
	err = unavailable(err)
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		// The call may have run: not the "nothing was published" of
		// ErrUnavailable (503) but an unknown outcome (504).
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("publish: %w: %v", context.Canceled, err)
		}
		return nil, fmt.Errorf("publish: %w: %v", context.DeadlineExceeded, err)
	}
	return offsets, err
}

// History implements Backplane: one call of syncgate_history_page, on the
// history client's own connections.
func (b *Redis) History(ctx context.Context, s Stream, since string, page Page) (History, error) {
	var epoch, id string
	foreign := false
	if since != "" {
		o, err := ParseOffset(since)
		if err != nil {
			return History{}, err
		}
		epoch, id = o.Epoch, strconv.FormatUint(o.Hi, 10)+"-"+strconv.FormatUint(o.Lo, 10)
		if foreign = o.Foreign(s); foreign {
			// Another stream's position: only the head is read, and the
			// resume is not recovered.
			epoch, id = "", ""
		}
	}
	page = page.withDefaults()
	rep, err := redisfn.History(ctx, b.hist, redisfn.HistoryRequest{
		Project: s.Project, Collection: s.Collection, SinceEpoch: epoch, SinceID: id,
		MaxEvents: page.MaxEvents, MaxBytes: page.MaxBytes,
	}, b.load)
	if err != nil {
		return History{}, fmt.Errorf("history %s: %w", s, unavailable(err))
	}
	headOff, err := ParseOffset(rep.Epoch + ":" + rep.Last)
	if err != nil {
		return History{}, fmt.Errorf("history %s: bad head: %w", s, err)
	}
	tag := StreamTag(s)
	headOff.Stream = tag
	h := History{Head: headOff.String(), Recovered: rep.Recovered && !foreign, More: rep.More}
	if len(rep.Entries) > 0 {
		h.Events = make([]syncgate.Event, 0, len(rep.Entries))
	}
	prefix := rep.Epoch + "t" + tag + ":"
	for _, en := range rep.Entries {
		var ev syncgate.Event
		if err := json.Unmarshal([]byte(en.JSON), &ev); err != nil {
			// Never a silent gap: the reader reloads (recovered:false).
			b.log.Warn("undecodable history entry; the resume is not recovered", "stream", s.String(), "id", en.ID, "err", err)
			b.countInvalid()
			h.Events, h.Recovered, h.More, h.Bytes = nil, false, false, 0
			return h, nil
		}
		ev.Offset = prefix + en.ID
		h.Events = append(h.Events, ev)
		h.Bytes += len(en.JSON)
	}
	return h, nil
}

// Close implements Backplane.
func (b *Redis) Close() error {
	err := b.shutdown()
	b.wg.Wait()
	return err
}

func (b *Redis) shutdown() error {
	b.subMu.Lock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.subMu.Unlock()
		return nil
	}
	b.closed = true
	b.recv = nil
	groups := b.groups
	b.groups = map[string]*psGroup{}
	b.mu.Unlock()
	b.cancel()
	for _, g := range groups {
		_ = g.ps.Close()
	}
	b.subMu.Unlock()
	err := errors.Join(b.sub.Close(), b.cmd.Close(), b.hist.Close())
	if b.m != nil {
		b.m.BackplaneUp.Set(0)
	}
	return err
}
