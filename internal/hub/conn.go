package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// subState is where a subscription is in its life.
type subState uint8

const (
	subReplaying subState = iota // history being read; live events go to pending
	subLive                      // live events go to the queue
	subEnded                     // unsubscribed or connection gone
)

// subscription is one (project, collection) a connection receives.
type subscription struct {
	conn   *conn
	id     json.RawMessage
	stream backplane.Stream
	header []byte // `{"op":"events",...,"events":[`

	// Guarded by conn.mu.
	state        subState
	last         backplane.Offset // newest offset queued to the client
	pending      []*message       // live events that arrived during replay
	pendingBytes int
	replay       []*message        // history not yet queued; the writer pulls it
	replayBytes  int               // bytes of the messages in replay
	cursor       backplane.Cursor  // where reading history stands
	fetching     bool              // a page of history is being read
	head         backplane.Offset  // the newest stream head History answered
	resetTo      *backplane.Offset // a backplane Reset that arrived during replay
}

// item is one queued outbound thing: an event of a subscription, or a
// ready-made control frame (sub == nil).
type item struct {
	sub   *subscription
	msg   *message
	frame []byte
}

// conn is one client connection. The reader goroutine (the HTTP handler)
// owns subs' membership; the writer goroutine owns the socket's writes.
type conn struct {
	h      *Hub
	id     string
	sock   *wsconn.Socket
	ws     *websocket.Conn // sock.WS
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: "the queue or the close state changed"
	abort  chan struct{} // closed by a close that drops the queue: the writer stops waiting for room
	writer sync.WaitGroup

	mu          sync.Mutex
	claims      *auth.Claims
	subs        map[backplane.Stream]*subscription
	queue       []item
	queued      int // bytes in queue
	closeCode   CloseCode
	closeReason string
	closeFlush  bool
	aborted     bool // abort is closed
	expiry      *time.Timer
	// writerStarted says the writer runs and so sends the close.
	writerStarted bool
	replaying     []*subscription // subscriptions whose history the writer is pulling
	pendingSize   int             // bytes in every subscription's pending buffer
	replaySize    int             // bytes in every subscription's replay

	spare []item      // writer-owned second queue buffer
	buf   []byte      // writer-owned frame buffer
	stamp []time.Time // writer-owned publish times of a frame's events
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// deliver queues a live event for sub. It never blocks.
func (c *conn) deliver(sub *subscription, m *message) {
	c.mu.Lock()
	if c.closeCode != 0 || sub.state == subEnded {
		c.mu.Unlock()
		c.h.dropped(metrics.DropClosing)
		return
	}
	if m.aud != nil && !m.aud.Allows(c.claims.Subject, c.claims.Roles) {
		c.mu.Unlock()
		c.h.dropped(metrics.DropAudience)
		return
	}
	if sub.state == subReplaying {
		if len(sub.pending) >= c.h.cfg.MaxPendingEvents || c.queued+c.pendingSize+len(m.data) > c.h.cfg.MaxQueueBytes {
			c.failSlowLocked("pending events during replay over the bound")
		} else {
			sub.pending = append(sub.pending, m)
			sub.pendingBytes += len(m.data)
			c.pendingSize += len(m.data)
		}
		c.mu.Unlock()
		return
	}
	ok := c.queueEventLocked(sub, m)
	c.mu.Unlock()
	if ok {
		c.signal()
	}
}

// queueEventLocked appends m unless the subscription already has it. When the
// offset's epoch differs from the subscription's, the stream lost its data:
// the client gets a fresh `subscribed` with recovered=false first. c.mu held.
func (c *conn) queueEventLocked(sub *subscription, m *message) bool {
	if m.off.Epoch != sub.last.Epoch {
		start := backplane.Offset{Epoch: m.off.Epoch}
		c.queueFrameLocked(encodeFrame(subscribedFrame{Op: "subscribed", ID: sub.id, Project: sub.stream.Project,
			Collection: sub.stream.Collection, Offset: start.String(), Recovered: false}))
	} else if !sub.last.Less(m.off) {
		c.h.dropped(metrics.DropDuplicate)
		return false
	}
	sub.last = m.off
	return c.queueLocked(item{sub: sub, msg: m}, len(m.data))
}

func (c *conn) queueFrameLocked(frame []byte) bool {
	return c.queueLocked(item{frame: frame}, len(frame))
}

// queueLocked appends it, or closes the connection with 4008 when the queue
// would exceed its bound. c.mu held.
func (c *conn) queueLocked(it item, size int) bool {
	if c.closeCode != 0 {
		return false
	}
	if c.queued+size > c.h.cfg.MaxQueueBytes {
		c.failSlowLocked("queue over " + itoa(c.h.cfg.MaxQueueBytes) + " bytes")
		return false
	}
	c.queue = append(c.queue, it)
	c.queued += size
	return true
}

// failSlowLocked closes a connection that cannot keep up: its queue is
// dropped (the client resumes from its last offset) and it gets 4008.
func (c *conn) failSlowLocked(why string) {
	if c.closeCode != 0 {
		return
	}
	n := 0
	for _, it := range c.queue {
		if it.msg != nil {
			n++
		}
	}
	clear(c.queue)
	c.queue, c.queued = c.queue[:0], 0
	c.closeLocked(CloseSlowConsumer, "slow consumer: "+why, false)
	if m := c.h.m; m != nil {
		m.SlowConsumers.Inc()
		m.EventsDropped.WithLabelValues(metrics.DropSlowClient).Add(float64(n))
	}
	c.log.Warn("closing slow consumer", "code", int(CloseSlowConsumer), "why", why, "dropped_events", n)
}

// stalled closes with 4008 a connection whose client read nothing for the
// write timeout (or did not answer a ping in that time), unless a close is
// already decided.
func (c *conn) stalled(why string) {
	c.mu.Lock()
	c.failSlowLocked(why)
	c.mu.Unlock()
}

// requestClose asks the writer to close the connection with code, after
// writing what is queued when flush is set. The first request wins.
func (c *conn) requestClose(code CloseCode, reason string, flush bool) {
	c.mu.Lock()
	c.closeLocked(code, reason, flush)
	c.mu.Unlock()
}

// closeLocked records the close unless one is decided; a close that drops
// the queue also stops the writer waiting for room. c.mu held.
func (c *conn) closeLocked(code CloseCode, reason string, flush bool) {
	if c.closeCode == 0 {
		c.closeCode, c.closeReason, c.closeFlush = code, reason, flush
		if !flush && !c.aborted && c.abort != nil {
			c.aborted = true
			close(c.abort)
		}
	}
	c.signal()
}

// send queues a control frame.
func (c *conn) send(frame []byte) {
	c.mu.Lock()
	ok := c.queueFrameLocked(frame)
	c.mu.Unlock()
	if ok {
		c.signal()
	}
}

func (c *conn) sendError(id json.RawMessage, code, msg string) {
	c.send(encodeFrame(errorFrame{Op: "error", ID: id, Code: code, Message: msg}))
}

// reset restarts sub after the backplane lost events it cannot replay.
func (c *conn) reset(sub *subscription, head backplane.Offset) {
	c.mu.Lock()
	if sub.state == subReplaying {
		// Applied when the replay ends: the live events this node lost may
		// lie beyond what History returned.
		if sub.resetTo == nil || sub.resetTo.Less(head) || sub.resetTo.Epoch != head.Epoch {
			sub.resetTo = &head
		}
		c.mu.Unlock()
		return
	}
	if sub.state != subLive || (head.Epoch == sub.last.Epoch && !sub.last.Less(head)) {
		// Ended, or already past head (it replayed further): no gap here.
		c.mu.Unlock()
		return
	}
	sub.last = head
	ok := c.queueFrameLocked(encodeFrame(subscribedFrame{Op: "subscribed", ID: sub.id, Project: sub.stream.Project,
		Collection: sub.stream.Collection, Offset: head.String(), Recovered: false}))
	c.mu.Unlock()
	if ok {
		c.signal()
	}
}

// subscribe handles the subscribe op. It runs on the reader goroutine.
func (c *conn) subscribe(req request) {
	if req.ID == nil {
		c.sendError(nil, codeBadRequest, "subscribe needs an id")
		return
	}
	if err := syncgate.ValidateSubscription(req.Project, req.Collection); err != nil {
		c.sendError(req.ID, codeBadRequest, err.Error())
		return
	}
	var since backplane.Offset
	if req.Since != "" {
		var err error
		if since, err = backplane.ParseOffset(req.Since); err != nil {
			c.sendError(req.ID, codeBadRequest, "since: "+err.Error())
			return
		}
	}
	s := backplane.Stream{Project: req.Project, Collection: req.Collection}
	c.mu.Lock()
	err := c.claims.CanRead(s.Project, s.Collection)
	_, dup := c.subs[s]
	full := len(c.subs) >= c.h.cfg.MaxSubscriptions
	var sub *subscription
	if err == nil && !dup && !full {
		sub = &subscription{conn: c, id: req.ID, stream: s, header: eventsHeader(s.Project, s.Collection), state: subReplaying}
		c.subs[s] = sub
	}
	c.mu.Unlock()
	switch {
	case err != nil:
		c.sendError(req.ID, codeForbidden, err.Error())
		return
	case dup:
		c.sendError(req.ID, codeBadRequest, "already subscribed to "+s.String())
		return
	case full:
		c.sendError(req.ID, codeLimitExceeded, "at most "+itoa(c.h.cfg.MaxSubscriptions)+" subscriptions per connection")
		return
	}

	sh := c.h.shard(s)
	sh.add(sub)
	if m := c.h.m; m != nil {
		m.Subscriptions.Inc()
	}
	// fail ends the half-made subscription; subscribed tells whether the
	// backplane holds a reference to release.
	fail := func(err error, subscribed bool) {
		c.log.Warn("subscribe failed", "stream", s.String(), "err", err)
		c.endSubscription(sub, subscribed)
		c.sendError(req.ID, codeInternal, "subscribe "+s.String()+": "+err.Error())
	}
	if err := c.h.bp.Subscribe(c.ctx, s); err != nil {
		fail(err, false)
		return
	}
	subscribed := time.Now()
	// History is read a page at a time (the first here, the rest by the
	// writer as the client reads), each page sized to the room left in
	// the connection's queue bound, through the node's HistoryReader.
	c.mu.Lock()
	page := backplane.ReplayPage(c.h.cfg.MaxQueueBytes, c.queued+c.pendingSize+c.replaySize)
	c.mu.Unlock()
	hist, err := c.h.cfg.History.Read(c.ctx, s, req.Since, page, subscribed)
	if err != nil {
		fail(err, true)
		return
	}
	head, err := backplane.ParseOffset(hist.Head)
	if err != nil {
		hist.Release()
		fail(err, true)
		return
	}
	cursor, events := backplane.NewCursor(req.Since, subscribed, hist)
	replay, replayBytes, err := encodeReplay(events)
	hist.Release()
	if err != nil {
		fail(err, true)
		return
	}

	// Replay, then whatever arrived live meanwhile, skipping what replay
	// already covered: no gap and no duplicate at the seam.
	c.mu.Lock()
	if sub.state != subReplaying {
		c.mu.Unlock()
		return
	}
	sub.last = since
	if !hist.Recovered || req.Since == "" {
		sub.last = head
	}
	c.queueFrameLocked(encodeFrame(subscribedFrame{Op: "subscribed", ID: req.ID, Project: s.Project,
		Collection: s.Collection, Offset: hist.Head, Recovered: hist.Recovered}))
	// The writer pulls the replay a chunk at a time as the client reads it,
	// so a client catching up on more history than its queue bound is not
	// mistaken for a slow consumer, and this reader goes on reading (pongs,
	// other requests) meanwhile. Live events wait in sub.pending.
	sub.replay, sub.head = replay, head
	sub.replayBytes = replayBytes
	c.replaySize += replayBytes
	sub.cursor = cursor
	if len(replay) == 0 && !sub.cursor.More {
		c.finishReplayLocked(sub)
	} else {
		c.replaying = append(c.replaying, sub)
	}
	c.mu.Unlock()
	c.signal()
}

// encodeReplay encodes a page of history for the connection (the events
// are shared with other readers of the page and left unchanged).
func encodeReplay(events []syncgate.Event) ([]*message, int, error) {
	replay := make([]*message, 0, len(events))
	size := 0
	for i := range events {
		off, err := backplane.ParseOffset(events[i].Offset)
		if err != nil {
			return nil, 0, err
		}
		m, err := newMessage(off, &events[i])
		if err != nil {
			return nil, 0, err
		}
		replay = append(replay, m)
		size += len(m.data)
	}
	return replay, size, nil
}

// pullReplayLocked moves history of replaying subscriptions into the queue
// while it is below half its bound, finishing subscriptions whose history is
// all queued, and starts reading a subscription's next page of history
// when its replay is used up. It reports whether it queued anything. c.mu
// held; only the writer calls it.
func (c *conn) pullReplayLocked() bool {
	if len(c.replaying) == 0 || c.closeCode != 0 {
		return false
	}
	limit := c.h.cfg.MaxQueueBytes / 2
	moved := false
	for len(c.replaying) > 0 {
		sub := c.replaying[0]
		for sub.state == subReplaying && len(sub.replay) > 0 {
			m := sub.replay[0]
			if c.queued > 0 && c.queued+c.pendingSize+len(m.data) > limit {
				return moved
			}
			sub.replay[0] = nil
			sub.replay = sub.replay[1:]
			sub.replayBytes -= len(m.data)
			c.replaySize -= len(m.data)
			if m.aud != nil && !m.aud.Allows(c.claims.Subject, c.claims.Roles) {
				continue
			}
			if sub.last.Less(m.off) {
				sub.last = m.off
				if !c.queueLocked(item{sub: sub, msg: m}, len(m.data)) {
					return moved
				}
				moved = true
			}
		}
		if sub.state == subReplaying && (sub.cursor.More || sub.fetching) {
			if !sub.fetching && (c.queued == 0 || c.queued+c.pendingSize < limit) {
				c.fetchLocked(sub)
			}
			return moved
		}
		if sub.state == subReplaying {
			c.finishReplayLocked(sub)
			moved = true
		}
		c.replaying[0] = nil
		c.replaying = c.replaying[1:]
	}
	return moved
}

// fetchLocked starts reading sub's next page of history. The read runs on
// a goroutine of the writer's group (the connection's teardown waits for
// it; c.ctx ends it). c.mu held; only the writer calls it.
func (c *conn) fetchLocked(sub *subscription) {
	sub.fetching = true
	cur := sub.cursor // the goroutine's until it hands it back
	page := backplane.ReplayPage(c.h.cfg.MaxQueueBytes, c.queued+c.pendingSize+c.replaySize)
	c.writer.Add(1)
	go func() {
		defer c.writer.Done()
		hist, err := c.h.cfg.History.Read(c.ctx, sub.stream, cur.Since, page, cur.Subscribed)
		var replay []*message
		var size int
		var head backplane.Offset
		if err == nil {
			head, err = backplane.ParseOffset(hist.Head)
			if err == nil {
				replay, size, err = encodeReplay(cur.Advance(hist))
			}
			hist.Release()
		}
		c.mu.Lock()
		c.pageReadLocked(sub, hist.History, head, cur, replay, size, err)
		c.mu.Unlock()
		c.signal()
	}()
}

// pageReadLocked applies a page of history read for sub. A page that is not
// recovered (history trimmed past the cursor while the client was catching
// up) ends the replay as a Reset does: the client gets recovered:false.
// A read that failed closes the connection with 1012, after what is
// queued: the client resumes from its last offset. c.mu held.
func (c *conn) pageReadLocked(sub *subscription, hist backplane.History, head backplane.Offset, cur backplane.Cursor, replay []*message, size int, err error) {
	sub.fetching = false
	if sub.state != subReplaying || c.closeCode != 0 {
		return
	}
	switch {
	case err != nil:
		if c.ctx.Err() == nil {
			c.log.Warn("reading history for a replay failed; closing so that the client resumes", "stream", sub.stream.String(), "err", err)
			c.closeCode, c.closeReason, c.closeFlush = CloseServiceRestart, "history unavailable, resume", true
		}
	case !hist.Recovered:
		sub.cursor.More = false
		if sub.resetTo == nil || sub.resetTo.Less(head) || sub.resetTo.Epoch != head.Epoch {
			sub.resetTo = &head
		}
	default:
		sub.cursor = cur
		sub.replay, sub.replayBytes = replay, size
		c.replaySize += size
		if until, ok := cur.Until(); ok {
			sub.head = until
		}
	}
}

// finishReplayLocked makes sub live: a Reset that arrived during replay is
// applied, then the live events that arrived meanwhile are queued, skipping
// what replay covered, so there is no gap and no duplicate at the seam.
// c.mu held.
func (c *conn) finishReplayLocked(sub *subscription) {
	if sub.last.Less(sub.head) {
		sub.last = sub.head
	}
	if r := sub.resetTo; r != nil && (r.Epoch != sub.last.Epoch || sub.last.Less(*r)) {
		sub.last = *r
		c.queueFrameLocked(encodeFrame(subscribedFrame{Op: "subscribed", ID: sub.id, Project: sub.stream.Project,
			Collection: sub.stream.Collection, Offset: r.String(), Recovered: false}))
	}
	pending := sub.pending
	c.pendingSize -= sub.pendingBytes
	c.replaySize -= sub.replayBytes
	sub.pending, sub.pendingBytes, sub.replay, sub.replayBytes, sub.resetTo = nil, 0, nil, 0, nil
	sub.state = subLive
	for _, m := range pending {
		if m.off.Epoch == sub.last.Epoch && !sub.last.Less(m.off) {
			continue // covered by replay or before the head
		}
		if !c.queueEventLocked(sub, m) {
			return
		}
	}
}

// unsubscribe handles the unsubscribe op.
func (c *conn) unsubscribe(req request) {
	if err := syncgate.ValidateSubscription(req.Project, req.Collection); err != nil {
		c.sendError(req.ID, codeBadRequest, err.Error())
		return
	}
	s := backplane.Stream{Project: req.Project, Collection: req.Collection}
	c.mu.Lock()
	sub := c.subs[s]
	c.mu.Unlock()
	if sub == nil {
		c.sendError(req.ID, codeNotFound, "not subscribed to "+s.String())
		return
	}
	c.endSubscription(sub, true)
	c.send(encodeFrame(unsubscribedFrame{Op: "unsubscribed", ID: req.ID, Project: s.Project, Collection: s.Collection}))
}

// endSubscription removes sub from the connection, the index and the
// backplane.
func (c *conn) endSubscription(sub *subscription, unsubscribe bool) {
	c.mu.Lock()
	if sub.state == subEnded {
		c.mu.Unlock()
		return
	}
	sub.state = subEnded
	c.pendingSize -= sub.pendingBytes
	c.replaySize -= sub.replayBytes
	sub.pending, sub.pendingBytes, sub.replay, sub.replayBytes = nil, 0, nil, 0
	delete(c.subs, sub.stream)
	c.mu.Unlock()
	c.h.removeIndex(sub)
	if unsubscribe {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.h.bp.Unsubscribe(ctx, sub.stream); err != nil {
			c.log.Warn("backplane unsubscribe failed", "stream", sub.stream.String(), "err", err)
		}
	}
}

func (h *Hub) removeIndex(sub *subscription) {
	h.shard(sub.stream).remove(sub)
	if h.m != nil {
		h.m.Subscriptions.Dec()
	}
}

// refresh handles `auth` on a live connection: same user, new expiry and
// grants. Subscriptions the new token no longer allows are ended.
func (c *conn) refresh(req request) {
	claims, err := c.h.cfg.Verifier.Verify(c.ctx, req.Token)
	if err != nil {
		c.h.authFailed(err)
		c.sendError(req.ID, codeUnauthorized, err.Error())
		return
	}
	c.mu.Lock()
	if claims.Subject != c.claims.Subject {
		c.mu.Unlock()
		c.h.authFailed(&auth.TokenError{Reason: auth.ReasonClaims, Err: errors.New("subject changed")})
		c.requestClose(CloseForbidden, "token is for another user", true)
		return
	}
	c.claims = claims
	c.expiry.Reset(time.Until(claims.ExpiresAt))
	var revoked []*subscription
	for _, sub := range c.subs {
		if claims.CanRead(sub.stream.Project, sub.stream.Collection) != nil {
			revoked = append(revoked, sub)
		}
	}
	c.mu.Unlock()
	c.send(encodeFrame(readyFrame{Op: "ready", ID: req.ID, Connection: c.id, User: claims.Subject, ExpiresAt: claims.ExpiresAt}))
	for _, sub := range revoked {
		c.endSubscription(sub, true)
		c.sendError(sub.id, codeForbidden, "refreshed token no longer grants "+sub.stream.String())
		c.send(encodeFrame(unsubscribedFrame{Op: "unsubscribed", ID: sub.id, Project: sub.stream.Project, Collection: sub.stream.Collection}))
	}
}

func (h *Hub) dropped(reason string) {
	if h.m != nil {
		h.m.EventsDropped.WithLabelValues(reason).Inc()
	}
}

func (h *Hub) authFailed(err error) {
	if h.m != nil {
		r := auth.Reason(err)
		if r == "" {
			r = "other"
		}
		h.m.AuthFailures.WithLabelValues(r).Inc()
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
