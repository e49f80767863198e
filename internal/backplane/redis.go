package backplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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
// Locks: subMu (subscription writes and connection rebuilds) before mu (all
// state). Receiver methods are called with mu held; they never block and
// never call back into the backplane.
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

type subWaiter struct {
	target int
	done   chan struct{}
}

type liveEvent struct {
	off  Offset
	ev   *syncgate.Event // nil: an entry the gateway cannot decode
	size int             // bytes of the channel message
}

// The live events held back during a fill are bounded per stream in count
// and bytes, and node-wide in bytes; beyond that they are dropped and the
// stream is filled again from history, which says recovered:false
// (Receiver.Reset) when it no longer holds them.
var (
	maxFillBuffer          = 100_000
	maxFillBufferBytes     = 32 << 20
	maxFillBufferNodeBytes = 256 << 20
)

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

// Client returns the command client (no command retries, so a publish is
// never sent twice). cmd/publisher uses it, unstarted, to publish with
// RedisPublish from the same URL forms as the gateway.
func (b *Redis) Client() redis.UniversalClient { return b.cmd }

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

func (b *Redis) loadAndVerify(ctx context.Context) error {
	if err := b.installLibrary(ctx); err != nil {
		return err
	}
	return unavailable(redisfn.CheckVersion(ctx, b.cmd))
}

// limits are the history limits of this node's library.
func (b *Redis) limits() redisfn.Limits {
	return redisfn.Limits{HistorySize: b.cfg.HistorySize, HistoryTTL: b.cfg.HistoryTTL}
}

// installLibrary loads the function library with this node's limits,
// replacing whatever is installed.
func (b *Redis) installLibrary(ctx context.Context) error { return unavailable(b.load(ctx)) }

// load is installLibrary as a redisfn.Loader, its error as redisfn's.
func (b *Redis) load(ctx context.Context) error {
	return redisfn.Load(ctx, b.cmd, b.limits(), redisfn.OwnerGateway, true)
}

// ensureLibrary reinstalls the function library with this node's limits on
// every master where it is missing (Redis restarted empty, a new cluster
// master), outdated, or installed by a publisher (with the publisher's
// limits). A library another gateway installed stays: nodes are configured
// alike (docs/redis.md), and replacing it would make two misconfigured
// nodes take turns; a difference in limits is logged once.
func (b *Redis) ensureLibrary(ctx context.Context) {
	lim := b.limits()
	err := redisfn.ForEachMaster(ctx, b.cmd, func(ctx context.Context, c redis.Cmdable) error {
		in, err := redisfn.InstalledOn(ctx, c)
		why := ""
		switch {
		case err != nil && redisfn.IsFunctionMissing(err):
			why = "missing"
		case err != nil:
			return err
		case in.Version != redisfn.LibraryVersion || in.Owner == "":
			why = "outdated"
		case in.Owner != redisfn.OwnerGateway:
			why = "installed by a publisher"
		default:
			if !in.Matches(lim) && !b.limitsWarned.Swap(true) {
				b.log.Warn("another gateway installed the function library with other history limits; configure every node alike",
					"installed_history_size", in.HistorySize, "installed_history_ttl", in.HistoryTTL.String(),
					"history_size", b.cfg.HistorySize, "history_ttl", b.cfg.HistoryTTL.String())
			}
			return nil
		}
		if err := redisfn.LoadOn(ctx, c, lim, redisfn.OwnerGateway); err != nil {
			return err
		}
		b.log.Info("installed the redis function library with this node's history limits", "was", why)
		return nil
	})
	if err != nil {
		b.log.Debug("checking the function library failed", "err", err)
	}
}

// newGroup opens a pub/sub connection for key. subMu is held.
func (b *Redis) newGroup(key string) *psGroup {
	g := &psGroup{key: key, probeCh: probeChannel(groupTag(key), b.cfg.NodeID), channels: make(map[string]*chanState)}
	ps := b.sub.SSubscribe(b.ctx, g.probeCh)
	b.mu.Lock()
	g.ps = ps
	b.groups[key] = g
	b.mu.Unlock()
	b.startLoop(g, ps, 0)
	return g
}

// groupTag is the hash tag of a group's probe channel: the project on
// Redis Cluster, so the probe travels the same shard as the project's
// events; a fixed name on a single Redis.
func groupTag(key string) string {
	if key == "" {
		return "node"
	}
	return key
}

func (b *Redis) startLoop(g *psGroup, ps *redis.PubSub, gen int) {
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(10_000), redis.WithChannelSendTimeout(time.Hour))
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for msg := range ch {
			b.handle(g, gen, msg)
		}
	}()
}

// handle processes one pub/sub message of g's connection generation gen.
func (b *Redis) handle(g *psGroup, gen int, msg any) {
	switch m := msg.(type) {
	case *redis.Subscription:
		if m.Kind != "ssubscribe" && m.Kind != "subscribe" {
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if g.gen != gen || b.closed {
			return
		}
		if m.Channel == g.probeCh {
			g.probeConfirms++
			if g.probeConfirms > 1 {
				b.log.Info("redis pub/sub resubscribed after a reconnect; filling gaps from history", "group", g.key, "channels", len(g.channels))
				if b.m != nil {
					b.m.BackplaneReconnects.Inc()
				}
			}
			return
		}
		st := g.channels[m.Channel]
		if st == nil {
			// A channel released while Redis was down (its SUNSUBSCRIBE
			// skipped) that the connection resubscribed on reconnecting.
			b.dropStaleLocked(g, gen, m.Channel)
			return
		}
		if st.confirmed < st.sent {
			st.confirmed++
			kept := st.waiters[:0]
			for _, w := range st.waiters {
				if w.target <= st.confirmed {
					close(w.done)
				} else {
					kept = append(kept, w)
				}
			}
			st.waiters = kept
			return
		}
		if st.refs > 0 {
			b.fillLocked(g, st)
		}
	case *redis.Message:
		if m.Channel == g.probeCh {
			b.mu.Lock()
			if g.gen == gen && m.Payload == g.probeToken {
				g.probeToken = ""
				g.stalled = false
			}
			b.mu.Unlock()
			b.updateUp()
			return
		}
		off, ev, err := decodeLive(m.Payload)
		b.mu.Lock()
		defer b.mu.Unlock()
		if g.gen != gen || b.closed {
			return
		}
		st := g.channels[m.Channel]
		if st == nil || st.refs == 0 {
			return
		}
		if off.Epoch != "" {
			off = off.In(st.s)
			if ev != nil {
				ev.Offset = off.String()
			}
		}
		if err != nil && off.Epoch == "" {
			// Not even an offset: where it belongs is unknown, so the
			// stream is treated as having a gap and filled from history,
			// which resets subscribers if it cannot fill it.
			b.log.Warn("undecodable message without an offset; filling the stream from history", "channel", m.Channel, "err", err)
			b.countInvalid()
			b.fillLocked(g, st)
			return
		}
		if err != nil {
			b.log.Warn("undecodable event; subscribers are told to reload", "channel", m.Channel, "offset", off.String(), "err", err)
		}
		b.deliverLocked(st, liveEvent{off, ev, len(m.Payload)})
	}
}

func (b *Redis) countInvalid() {
	if b.m != nil {
		b.m.EventsDropped.WithLabelValues(metrics.DropInvalid).Inc()
	}
}

// decodeLive parses a channel message: "<offset>\n<event JSON>". When the
// offset parses but the event does not, it returns the offset and the error.
func decodeLive(payload string) (Offset, *syncgate.Event, error) {
	offStr, raw, ok := strings.Cut(payload, "\n")
	if !ok {
		return Offset{}, nil, errors.New("no offset line")
	}
	off, err := ParseOffset(offStr)
	if err != nil {
		return Offset{}, nil, err
	}
	ev := new(syncgate.Event)
	if err := json.Unmarshal([]byte(raw), ev); err != nil {
		return off, nil, err
	}
	ev.Offset = offStr
	return off, ev, nil
}

// deliverLocked hands a live event to the Receiver, or holds it while the
// stream is being filled. b.mu is held.
func (b *Redis) deliverLocked(st *chanState, le liveEvent) {
	if st.filling {
		if st.overflow {
			return
		}
		if len(st.buf) >= maxFillBuffer || st.bufBytes+le.size > maxFillBufferBytes ||
			b.fillBytes+le.size > maxFillBufferNodeBytes {
			b.dropBufLocked(st)
			st.overflow = true
			return
		}
		st.buf = append(st.buf, le)
		st.bufBytes += le.size
		b.fillBytes += le.size
		return
	}
	b.handLocked(st, le)
}

// handLocked hands an event to the Receiver unless it was delivered
// already. b.mu is held.
func (b *Redis) handLocked(st *chanState, le liveEvent) {
	if st.hasLast && le.off.Epoch == st.last.Epoch && !st.last.Less(le.off) {
		return // already delivered (a fill overlapping live delivery)
	}
	st.last, st.hasLast = le.off, true
	if le.ev == nil {
		// Redis took an event the gateway cannot decode: never a silent
		// gap, subscribers reload and continue after it.
		b.countInvalid()
		if b.recv != nil {
			b.recv.Reset(st.s, le.off.String())
		}
		return
	}
	if b.recv != nil {
		b.recv.Receive(st.s, le.ev)
	}
}

// dropBufLocked empties st's fill buffer. b.mu is held.
func (b *Redis) dropBufLocked(st *chanState) {
	b.fillBytes -= st.bufBytes
	st.buf, st.bufBytes = nil, 0
}

// fillLocked starts refilling st from history after its last offset.
// b.mu is held.
func (b *Redis) fillLocked(g *psGroup, st *chanState) {
	if st.filling {
		st.refill = true
		return
	}
	st.filling = true
	since := ""
	if st.hasLast {
		since = st.last.String()
	}
	b.wg.Add(1)
	go b.fill(g, st, since)
}

func (b *Redis) fill(g *psGroup, st *chanState, since string) {
	defer b.wg.Done()
	// A gap is filled a page at a time, each delivered before the next is
	// read, so a long gap never holds more than a page of history.
	for {
		h, ok := b.fillPage(st, since)
		if !ok {
			b.mu.Lock()
			b.dropBufLocked(st)
			b.mu.Unlock()
			return
		}
		next, more := b.applyFill(g, st, since, h)
		if !more {
			return
		}
		since = next
	}
}

// fillPage reads one page of st's history after since, retrying with
// backoff until it succeeds or the backplane closes (ok false).
func (b *Redis) fillPage(st *chanState, since string) (History, bool) {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.PublishTimeout+time.Second)
		h, err := b.History(ctx, st.s, since, Page{})
		cancel()
		if err == nil {
			return h, true
		}
		if b.ctx.Err() != nil {
			return History{}, false
		}
		b.log.Warn("filling a gap from history failed; retrying", "stream", st.s.String(), "err", err)
		t := time.NewTimer(backoff(attempt, b.cfg.ReconnectMin, b.cfg.ReconnectMax))
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			return History{}, false
		}
	}
}

// applyFill delivers one page of a fill. When more of the gap remains it
// returns the offset to read on from and true, the stream still filling
// (live events held back); otherwise it ends the fill: the held-back live
// events are delivered and a refill that was asked for meanwhile starts.
func (b *Redis) applyFill(g *psGroup, st *chanState, since string, h History) (string, bool) {
	head, headErr := ParseOffset(h.Head)

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || g.channels[channelName(st.s)] != st {
		b.dropBufLocked(st)
		return "", false
	}
	switch {
	case headErr != nil:
		b.log.Error("history returned a bad head", "stream", st.s.String(), "err", headErr)
	case since == "":
		if !st.hasLast {
			st.last, st.hasLast = head, true
		}
	case h.Recovered:
		for i := range h.Events {
			ev := &h.Events[i]
			off, err := ParseOffset(ev.Offset)
			if err != nil {
				continue
			}
			b.handLocked(st, liveEvent{off: off, ev: ev})
		}
		if h.More && len(h.Events) > 0 && st.refs > 0 {
			return h.Events[len(h.Events)-1].Offset, true
		}
	default:
		b.log.Warn("gap cannot be filled from history (trimmed, or Redis lost its data); subscribers are told to reload",
			"stream", st.s.String(), "since", since, "head", h.Head)
		st.last, st.hasLast = head, true
		if b.recv != nil {
			b.recv.Reset(st.s, h.Head)
		}
	}
	st.filling = false
	buf := st.buf
	b.dropBufLocked(st)
	for _, le := range buf {
		b.deliverLocked(st, le)
	}
	if st.overflow {
		st.overflow, st.refill = false, true
	}
	if st.refill && st.refs > 0 {
		st.refill = false
		b.fillLocked(g, st)
	}
	return "", false
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

// Subscribe implements Backplane. The first local subscription to a stream
// subscribes its channel and returns once Redis confirmed it.
func (b *Redis) Subscribe(ctx context.Context, s Stream) error {
	ch := channelName(s)
	group := ""
	if b.cluster {
		group = s.Project
	}
	b.subMu.Lock()
	b.mu.Lock()
	if b.closed || !b.started {
		b.mu.Unlock()
		b.subMu.Unlock()
		return fmt.Errorf("subscribe %s: %w: backplane not running", s, ErrUnavailable)
	}
	g := b.groups[group]
	if g != nil {
		if err := b.downLocked(g); err != nil {
			// Fail at once: waiting on a connection that redials would
			// hold subMu, and every other subscribe and release, for
			// seconds.
			b.mu.Unlock()
			b.subMu.Unlock()
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
		if done := g.unsubscribing[ch]; done != nil {
			b.mu.Unlock()
			b.subMu.Unlock()
			t := time.NewTimer(b.cfg.SubscribeTimeout)
			defer t.Stop()
			select {
			case <-done:
				return b.Subscribe(ctx, s)
			case <-t.C:
				return fmt.Errorf("subscribe %s: %w: the previous unsubscribe did not finish within %s", s, ErrUnavailable, b.cfg.SubscribeTimeout)
			case <-ctx.Done():
				return fmt.Errorf("subscribe %s: %w", s, ctx.Err())
			}
		}
	}
	b.mu.Unlock()
	if g == nil {
		g = b.newGroup(group)
	}
	b.mu.Lock()
	st := g.channels[ch]
	if st == nil {
		st = &chanState{s: s}
		g.channels[ch] = st
	}
	st.refs++
	first := st.refs == 1
	if first {
		st.sent++
	}
	var w *subWaiter
	if st.confirmed < st.sent {
		w = &subWaiter{target: st.sent, done: make(chan struct{})}
		st.waiters = append(st.waiters, w)
	}
	ps := g.ps
	b.mu.Unlock()
	var err error
	if first {
		err = ps.SSubscribe(ctx, ch)
	}
	b.subMu.Unlock()
	if err != nil {
		b.release(s)
		return fmt.Errorf("subscribe %s: %w", s, classify("ssubscribe", err))
	}
	if w != nil {
		t := time.NewTimer(b.cfg.SubscribeTimeout)
		select {
		case <-w.done:
			t.Stop()
		case <-t.C:
			b.release(s)
			return fmt.Errorf("subscribe %s: %w: no confirmation from Redis within %s", s, ErrUnavailable, b.cfg.SubscribeTimeout)
		case <-ctx.Done():
			t.Stop()
			b.release(s)
			return fmt.Errorf("subscribe %s: %w", s, ctx.Err())
		}
	}
	b.mu.Lock()
	need := !st.hasLast
	b.mu.Unlock()
	if need {
		// Where this node's delivery of the stream starts, so a later gap
		// is filled from the right place.
		h, err := b.History(ctx, s, "", Page{MaxEvents: 1, MaxBytes: 1})
		if err != nil {
			b.release(s)
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
		if head, err := ParseOffset(h.Head); err == nil {
			b.mu.Lock()
			if !st.hasLast {
				st.last, st.hasLast = head, true
			}
			b.mu.Unlock()
		}
	}
	return nil
}

// Unsubscribe implements Backplane.
func (b *Redis) Unsubscribe(ctx context.Context, s Stream) error {
	b.release(s)
	return nil
}

// release drops one local subscription of s, unsubscribing the channel
// after the last (and, on Redis Cluster, closing the project's connection
// when it carries no channel any more). Network calls happen outside subMu:
// with Redis down they wait for the connection's redial, and holding subMu
// meanwhile made every subscribe and teardown on the node wait in line.
// While the connection is known down no SUNSUBSCRIBE is sent at all; the
// connection resubscribes the channel when it reconnects, and the
// confirmation, finding no subscriber, unsubscribes it (dropStaleLocked).
func (b *Redis) release(s Stream) {
	ch := channelName(s)
	group := ""
	if b.cluster {
		group = s.Project
	}
	b.subMu.Lock()
	b.mu.Lock()
	g := b.groups[group]
	var st *chanState
	if g != nil {
		st = g.channels[ch]
	}
	if st == nil {
		b.mu.Unlock()
		b.subMu.Unlock()
		return
	}
	st.refs--
	if st.refs > 0 {
		b.mu.Unlock()
		b.subMu.Unlock()
		return
	}
	delete(g.channels, ch)
	ps := g.ps
	closeGroup := b.cluster && len(g.channels) == 0
	if closeGroup {
		delete(b.groups, group)
	}
	down := b.downLocked(g) != nil
	var done chan struct{}
	if !closeGroup && !down {
		done = b.markUnsubscribingLocked(g, ch)
	}
	b.mu.Unlock()
	b.subMu.Unlock()
	switch {
	case closeGroup:
		_ = ps.Close()
	case done != nil:
		b.sunsubscribe(g, ps, ch, done)
	}
}

// markUnsubscribingLocked records an SUNSUBSCRIBE of ch in flight. b.mu is
// held.
func (b *Redis) markUnsubscribingLocked(g *psGroup, ch string) chan struct{} {
	if g.unsubscribing == nil {
		g.unsubscribing = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	g.unsubscribing[ch] = done
	return done
}

// sunsubscribe sends SUNSUBSCRIBE ch on ps (a connection of g), then lets
// a waiting Subscribe of ch go on.
func (b *Redis) sunsubscribe(g *psGroup, ps *redis.PubSub, ch string, done chan struct{}) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.SubscribeTimeout)
	err := ps.SUnsubscribe(ctx, ch)
	cancel()
	if err != nil {
		// The channel is out of the connection's set, so a reconnect
		// will not subscribe it again; nothing else to do.
		b.log.Debug("sunsubscribe failed", "channel", ch, "err", err)
	}
	b.mu.Lock()
	if g.unsubscribing[ch] == done {
		delete(g.unsubscribing, ch)
	}
	b.mu.Unlock()
	close(done)
}

// dropStaleLocked unsubscribes ch, confirmed on g's connection generation
// gen though nothing on this node subscribes it, from a goroutine (the
// caller is a delivery loop, which must not block). b.mu is held.
func (b *Redis) dropStaleLocked(g *psGroup, gen int, ch string) {
	if b.closed || g.gen != gen || g.unsubscribing[ch] != nil || b.groups[g.key] != g {
		return
	}
	done := b.markUnsubscribingLocked(g, ch)
	ps := g.ps
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.sunsubscribe(g, ps, ch, done)
	}()
}

// downLocked returns why g's connection (or the command connection) is
// known to be down, or nil. b.mu is held.
func (b *Redis) downLocked(g *psGroup) error {
	if b.cmdErr != nil {
		return b.cmdErr
	}
	if g.unreachable != nil {
		return g.unreachable
	}
	if g.stalled {
		return fmt.Errorf("%w: pub/sub stalled (probe did not return); reconnecting", ErrUnavailable)
	}
	return nil
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

// probeLoop publishes a probe on each connection's private channel and
// expects it back; a probe that does not return in time marks a stalled
// connection, which is rebuilt and its streams filled from history.
func (b *Redis) probeLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.ProbeInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.probe()
	}
}

func (b *Redis) probe() {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.ProbeTimeout)
	defer cancel()
	pingErr := b.cmd.Ping(ctx).Err()
	if pingErr == nil {
		b.ensureLibrary(ctx)
	}
	now := time.Now()
	type send struct {
		g     *psGroup
		token string
	}
	var sends []send
	var stalled []*psGroup
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if pingErr != nil {
		b.cmdErr = classify("ping", pingErr)
	} else {
		b.cmdErr = nil
	}
	for _, g := range b.groups {
		if g.rebuilding {
			continue
		}
		if g.probeToken != "" {
			if now.Sub(g.probeSent) > b.cfg.ProbeTimeout {
				g.probeToken = ""
				g.stalled = true
				stalled = append(stalled, g)
			}
			continue
		}
		if now.Sub(g.probeSent) < b.cfg.ProbeInterval {
			continue
		}
		g.probeSeq++
		g.probeToken = b.cfg.NodeID + "-" + strconv.FormatUint(g.probeSeq, 10)
		g.probeSent = now
		sends = append(sends, send{g, g.probeToken})
	}
	b.mu.Unlock()
	for _, g := range stalled {
		if b.m != nil {
			b.m.BackplaneStalls.Inc()
		}
		b.log.Warn("redis pub/sub stalled: probe did not come back; rebuilding the connection",
			"group", g.key, "timeout", b.cfg.ProbeTimeout.String())
		b.wg.Add(1)
		go b.rebuild(g)
	}
	for _, s := range sends {
		err := b.cmd.SPublish(ctx, s.g.probeCh, s.token).Err()
		b.mu.Lock()
		if err != nil {
			s.g.unreachable = classify("probe", err)
			if s.g.probeToken == s.token {
				s.g.probeToken = "" // never sent: not a stall
			}
		} else {
			s.g.unreachable = nil
		}
		b.mu.Unlock()
	}
	b.updateUp()
}

// rebuild replaces g's pub/sub connection with a new one subscribed to
// every active channel; the confirmations start a fill of each.
func (b *Redis) rebuild(g *psGroup) {
	defer b.wg.Done()
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	if b.closed || b.groups[g.key] != g {
		b.mu.Unlock()
		return
	}
	g.rebuilding = true
	b.mu.Unlock()

	ps := b.sub.SSubscribe(b.ctx, g.probeCh)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ps.Close()
		return
	}
	old := g.ps
	g.ps = ps
	g.gen++
	gen := g.gen
	g.probeConfirms = 0
	g.probeToken = ""
	g.probeSent = time.Time{}
	g.rebuilding = false
	chans := make([]string, 0, len(g.channels))
	for ch := range g.channels {
		chans = append(chans, ch)
	}
	b.mu.Unlock()
	b.startLoop(g, ps, gen)
	_ = old.Close()
	if len(chans) > 0 {
		if err := ps.SSubscribe(b.ctx, chans...); err != nil {
			b.log.Warn("resubscribing after a stall failed; the connection retries", "err", err)
		}
	}
	if b.m != nil {
		b.m.BackplaneReconnects.Inc()
	}
}

// Ready implements Checker: Redis answers commands, and every pub/sub
// connection carried its last probe.
func (b *Redis) Ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readyLocked()
}

func (b *Redis) readyLocked() error {
	if b.closed {
		return fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if b.cmdErr != nil {
		return b.cmdErr
	}
	for _, g := range b.groups {
		if g.unreachable != nil {
			return g.unreachable
		}
		if g.stalled {
			return fmt.Errorf("%w: pub/sub stalled (probe did not return); reconnecting", ErrUnavailable)
		}
	}
	return nil
}

func (b *Redis) updateUp() {
	b.mu.Lock()
	up := b.readyLocked() == nil
	changed := up != b.up
	b.up = up
	b.mu.Unlock()
	if b.m != nil {
		if up {
			b.m.BackplaneUp.Set(1)
		} else {
			b.m.BackplaneUp.Set(0)
		}
	}
	if changed {
		if up {
			b.log.Info("redis backplane up")
		} else {
			b.log.Warn("redis backplane down", "err", b.Ready())
		}
	}
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
