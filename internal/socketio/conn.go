package socketio

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// closeCode is a WebSocket close status; the same values as /v1/ws.
type closeCode websocket.StatusCode

const (
	closeNormal         closeCode = 1000
	closeUnauthorized   closeCode = 4001 // no successful CONNECT in time
	closeForbidden      closeCode = 4003 // a refreshed token is for another user
	closeSlowConsumer   closeCode = 4008 // queue overflowed; the client reconnects and recovers
	closeProtocolError  closeCode = 4400 // not Engine.IO / Socket.IO
	closeServiceRestart closeCode = 1012 // draining, or a stream lost events
	closeTryAgainLater  closeCode = 1013 // node full
	closeInternalError  closeCode = 1011 // a panic in the connection's goroutines
)

// Error codes of failed acks and `error` events, as in /v1/ws.
const (
	codeBadRequest    = "bad_request"
	codeForbidden     = "forbidden"
	codeNotFound      = "not_found"
	codeLimitExceeded = "limit_exceeded"
	codeUnauthorized  = "unauthorized"
	codeInternal      = "internal"
)

type subState uint8

const (
	subReplaying subState = iota // history being read; live events go to pending
	subLive                      // live events go to the queue
	subEnded                     // left, or connection gone
)

// subscription is one joined project or subscribed collection.
type subscription struct {
	conn *conn
	key  subKey

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

// stateOp changes the writer's recovery state at its place in the queue.
type stateOp uint8

const (
	opNone stateOp = iota
	opSet
	opRemove
)

// item is one queued outbound thing: an event of a subscription, a ready
// frame, or a recovery-state change (possibly with a frame that carries the
// new state as its last argument).
type item struct {
	sub       *subscription
	msg       *message
	frame     []byte
	withState bool // frame is an unclosed event array: append the state
	op        stateOp
	key       subKey
	off       backplane.Offset
}

// conn is one Engine.IO connection with at most one Socket.IO socket (the
// namespace "/"). The reader goroutine (the HTTP handler) owns the socket's
// session; the writer goroutine owns every socket write and the recovery
// state it hands out.
type conn struct {
	s        *Server
	sid      string
	sock     *wsconn.Socket
	ws       *websocket.Conn // sock.WS
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wake     chan struct{} // capacity 1
	abort    chan struct{} // closed by a close that drops the queue: the writer stops waiting for room
	writer   sync.WaitGroup
	token    string // from the upgrade request, used when CONNECT has none
	lastPong atomic.Int64
	joined   atomic.Bool // a Socket.IO CONNECT succeeded

	// Reader-owned.
	skipBinary      int
	connectFailures int

	mu          sync.Mutex
	claims      *auth.Claims
	subs        map[subKey]*subscription
	queue       []item
	queued      int
	closeCode   closeCode
	closeReason string
	closeFlush  bool
	aborted     bool // abort is closed
	expiry      *time.Timer
	authTimer   *time.Timer
	// writerStarted says the writer runs and so sends the close.
	writerStarted bool
	replaying     []*subscription // subscriptions whose history the writer is pulling
	pendingSize   int             // bytes in every subscription's pending buffer
	replaySize    int             // bytes in every subscription's replay

	// Writer-owned.
	spare   []item
	written map[subKey]backplane.Offset
	keys    []subKey // written's keys, sorted
	buf     []byte
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// itemOverhead approximates the state string appended to an event.
const itemOverhead = 64

// deliver queues a live event for sub. It never blocks.
func (c *conn) deliver(sub *subscription, m *message) {
	c.mu.Lock()
	if c.closeCode != 0 || sub.state == subEnded {
		c.mu.Unlock()
		c.s.dropped(metrics.DropClosing)
		return
	}
	if m.aud != nil && !m.aud.Allows(c.claims.Subject, c.claims.Roles) {
		c.mu.Unlock()
		c.s.dropped(metrics.DropAudience)
		return
	}
	if sub.state == subReplaying {
		size := len(m.data[kindIndex(sub.key.kind)]) + itemOverhead
		if len(sub.pending) >= c.s.cfg.MaxPendingEvents || c.queued+c.pendingSize+size > c.s.cfg.MaxQueueBytes {
			c.failSlowLocked("pending events during replay over the bound")
		} else {
			sub.pending = append(sub.pending, m)
			sub.pendingBytes += size
			c.pendingSize += size
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

// queueEventLocked appends m unless the subscription already has it. An
// offset of another epoch means the stream lost its data: Socket.IO cannot
// say so on a live socket, so the connection is closed and the client's
// recovery attempt reports recovered=false. c.mu held.
func (c *conn) queueEventLocked(sub *subscription, m *message) bool {
	if m.off.Epoch != sub.last.Epoch {
		c.closeLocked(closeServiceRestart, "stream lost events, reconnect", true)
		return false
	}
	if !sub.last.Less(m.off) {
		c.s.dropped(metrics.DropDuplicate)
		return false
	}
	sub.last = m.off
	return c.queueLocked(item{sub: sub, msg: m}, len(m.data[kindIndex(sub.key.kind)])+itemOverhead)
}

// queueLocked appends it, or closes the connection with 4008 when the queue
// would exceed its bound. c.mu held.
func (c *conn) queueLocked(it item, size int) bool {
	if c.closeCode != 0 {
		return false
	}
	if c.queued+size > c.s.cfg.MaxQueueBytes {
		c.failSlowLocked("queue over " + strconv.Itoa(c.s.cfg.MaxQueueBytes) + " bytes")
		return false
	}
	c.queue = append(c.queue, it)
	c.queued += size
	return true
}

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
	c.closeLocked(closeSlowConsumer, "slow consumer: "+why, false)
	if m := c.s.m; m != nil {
		m.SlowConsumers.WithLabelValues("socketio").Inc()
		m.EventsDropped.WithLabelValues(metrics.DropSlowClient).Add(float64(n))
	}
	c.log.Warn("closing slow consumer", "code", int(closeSlowConsumer), "why", why, "dropped_events", n)
}

// stalled closes with 4008 a connection whose client read nothing for the
// write timeout (or did not answer a ping in time), unless a close is
// already decided.
func (c *conn) stalled(why string) {
	c.mu.Lock()
	c.failSlowLocked(why)
	c.mu.Unlock()
}

// closeLocked records the close unless one is decided; a close that drops
// the queue also stops the writer waiting for room. c.mu held.
func (c *conn) closeLocked(code closeCode, reason string, flush bool) {
	if c.closeCode == 0 {
		c.closeCode, c.closeReason, c.closeFlush = code, reason, flush
		if !flush && !c.aborted && c.abort != nil {
			c.aborted = true
			close(c.abort)
		}
	}
	c.signal()
}

// requestClose asks the writer to close with code, after writing what is
// queued when flush is set. The first request wins.
func (c *conn) requestClose(code closeCode, reason string, flush bool) {
	c.mu.Lock()
	c.closeLocked(code, reason, flush)
	c.mu.Unlock()
}

// send queues a ready frame.
func (c *conn) send(frame []byte) {
	c.enqueue(item{frame: frame})
}

func (c *conn) enqueue(it item) {
	c.mu.Lock()
	ok := c.queueLocked(it, len(it.frame)+itemOverhead)
	c.mu.Unlock()
	if ok {
		c.signal()
	}
}

// reply answers a client event: an ack when the client asked for one.
func (c *conn) reply(ackID int64, body any) {
	if ackID >= 0 {
		c.send(encodeAck(ackID, body))
	}
}

// fail answers a failed client event: a failed ack when the client asked for
// one, else an `error` event.
func (c *conn) fail(ackID int64, event, code, msg string) {
	if ackID >= 0 {
		c.send(encodeAck(ackID, struct {
			OK    bool      `json:"ok"`
			Error errorBody `json:"error"`
		}{false, errorBody{Code: code, Message: msg}}))
		return
	}
	c.send(encodeEvent(evError, errorBody{Code: code, Message: msg, Event: event}))
}

// reserve adds a subscription for key in state replaying, or says why not.
func (c *conn) reserve(key subKey) (sub *subscription, dup bool, code, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.claims.CanRead(key.stream.Project, key.stream.Collection); err != nil {
		return nil, false, codeForbidden, err.Error()
	}
	if c.subs[key] != nil {
		return nil, true, "", ""
	}
	if len(c.subs) >= c.s.cfg.MaxSubscriptions {
		return nil, false, codeLimitExceeded, "at most " + strconv.Itoa(c.s.cfg.MaxSubscriptions) + " subscriptions per connection"
	}
	sub = &subscription{conn: c, key: key, state: subReplaying}
	c.subs[key] = sub
	return sub, false, "", ""
}

// open indexes a reserved subscription, subscribes the backplane and reads
// the stream's head. On error the subscription is gone again.
func (c *conn) open(sub *subscription, since string) (backplane.History, backplane.Offset, error) {
	hist, head, _, err := c.openPage(sub, since, backplane.Page{MaxEvents: 1, MaxBytes: 1})
	if err != nil {
		return backplane.History{}, backplane.Offset{}, err
	}
	hist.Release()
	return hist.History, head, nil
}

// openPage is open reading the first page of history after since through
// the node's HistoryReader (the caller releases it). It also returns when
// the backplane subscription was confirmed.
func (c *conn) openPage(sub *subscription, since string, page backplane.Page) (backplane.SharedPage, backplane.Offset, time.Time, error) {
	st := sub.key.stream
	c.s.shard(st).add(sub)
	if m := c.s.m; m != nil {
		m.Subscriptions.WithLabelValues("socketio").Inc()
	}
	if err := c.s.bp.Subscribe(c.ctx, st); err != nil {
		c.endSubscription(sub, false)
		return backplane.SharedPage{}, backplane.Offset{}, time.Time{}, err
	}
	subscribed := time.Now()
	hist, err := c.s.cfg.History.Read(c.ctx, st, since, page, subscribed)
	var head backplane.Offset
	if err == nil {
		if head, err = backplane.ParseOffset(hist.Head); err != nil {
			hist.Release()
		}
	}
	if err != nil {
		c.endSubscription(sub, true)
		return backplane.SharedPage{}, backplane.Offset{}, time.Time{}, err
	}
	return hist, head, subscribed, nil
}

// encodeReplay encodes a page of history for a subscription of kind k (the
// events are shared with other readers of the page and left unchanged);
// it returns the messages and their queue size.
func encodeReplay(events []syncgate.Event, k kind) ([]*message, int) {
	replay := make([]*message, 0, len(events))
	size := 0
	for i := range events {
		m, err := newMessage(&events[i], k == kindProject, k == kindCollection)
		if err == nil {
			replay = append(replay, m)
			size += len(m.data[kindIndex(k)]) + itemOverhead
		}
	}
	return replay, size
}

// startLocked queues the recovery-state entry of a joined subscription
// (with frame, an unclosed event that carries the new state) and makes it
// live from the stream head. c.mu held.
func (c *conn) startLocked(sub *subscription, head backplane.Offset, frame []byte) {
	if sub.state != subReplaying {
		return
	}
	sub.last, sub.head = head, head
	c.queueLocked(item{frame: frame, withState: true, op: opSet, key: sub.key, off: head}, len(frame)+itemOverhead)
	c.finishReplayLocked(sub)
}

// replayLocked hands the history of a recovered subscription after since
// to the writer, which pulls it a chunk at a time as the client reads it
// (pullReplayLocked) and reads the next page of it when the queue has room,
// so a client catching up on more history than its queue bound is not
// mistaken for a slow consumer, and the reader goes on reading (pongs,
// other packets) meanwhile. Live events wait in sub.pending. c.mu held.
func (c *conn) replayLocked(sub *subscription, replay []*message, size int, head, since backplane.Offset, cur backplane.Cursor) {
	if sub.state != subReplaying {
		return
	}
	sub.last, sub.head, sub.replay, sub.cursor = since, head, replay, cur
	sub.replayBytes = size
	c.replaySize += size
	if len(replay) == 0 && !cur.More {
		c.finishReplayLocked(sub)
	} else {
		c.replaying = append(c.replaying, sub)
	}
}

// pullReplayLocked moves history of replaying subscriptions into the queue
// while it is below half its bound, finishing subscriptions whose history is
// all queued, and starts reading a subscription's next page of history
// when its replay is used up. It reports whether it queued anything. The
// writer calls it after each batch. c.mu held.
func (c *conn) pullReplayLocked() bool {
	if len(c.replaying) == 0 || c.closeCode != 0 {
		return false
	}
	limit := c.s.cfg.MaxQueueBytes / 2
	moved := false
	for len(c.replaying) > 0 {
		sub := c.replaying[0]
		ki := kindIndex(sub.key.kind)
		for sub.state == subReplaying && len(sub.replay) > 0 {
			m := sub.replay[0]
			size := len(m.data[ki]) + itemOverhead
			if c.queued > 0 && c.queued+c.pendingSize+size > limit {
				return moved
			}
			sub.replay[0] = nil
			sub.replay = sub.replay[1:]
			sub.replayBytes -= size
			c.replaySize -= size
			if m.aud != nil && !m.aud.Allows(c.claims.Subject, c.claims.Roles) {
				continue
			}
			if sub.last.Less(m.off) {
				sub.last = m.off
				if !c.queueLocked(item{sub: sub, msg: m}, size) {
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
	page := backplane.ReplayPage(c.s.cfg.MaxQueueBytes, c.queued+c.pendingSize+c.replaySize)
	c.writer.Add(1)
	go func() {
		defer c.writer.Done()
		hist, err := c.s.cfg.History.Read(c.ctx, sub.key.stream, cur.Since, page, cur.Subscribed)
		var replay []*message
		var size int
		var head backplane.Offset
		if err == nil {
			head, err = backplane.ParseOffset(hist.Head)
			if err == nil {
				replay, size = encodeReplay(cur.Advance(hist), sub.key.kind)
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
// up) ends the replay as a Reset does: the connection closes with 1012 and
// the client's recovery reports recovered=false. A read that failed closes
// it with 1012 too, after what is queued: the client recovers from its
// last offset. c.mu held.
func (c *conn) pageReadLocked(sub *subscription, hist backplane.History, head backplane.Offset, cur backplane.Cursor, replay []*message, size int, err error) {
	sub.fetching = false
	if sub.state != subReplaying || c.closeCode != 0 {
		return
	}
	switch {
	case err != nil:
		if c.ctx.Err() == nil {
			c.log.Warn("reading history for a recovery failed; closing so that the client recovers", "stream", sub.key.stream.String(), "err", err)
			c.closeLocked(closeServiceRestart, "history unavailable, reconnect", true)
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

// finishReplayLocked makes sub live. When a backplane Reset arrived during
// replay and reaches past what history covered, the connection is closed
// with 1012 (Socket.IO cannot tell a live socket it missed events; the
// client's recovery attempt then reports recovered=false). Otherwise the
// live events that arrived meanwhile are queued, skipping what replay
// covered, so there is no gap and no duplicate at the seam. c.mu held.
func (c *conn) finishReplayLocked(sub *subscription) {
	if sub.last.Less(sub.head) {
		sub.last = sub.head
	}
	pending, reset := sub.pending, sub.resetTo
	c.pendingSize -= sub.pendingBytes
	c.replaySize -= sub.replayBytes
	sub.pending, sub.pendingBytes, sub.replay, sub.replayBytes, sub.resetTo = nil, 0, nil, 0, nil
	sub.state = subLive
	if reset != nil && (reset.Epoch != sub.last.Epoch || sub.last.Less(*reset)) {
		c.closeLocked(closeServiceRestart, "stream lost events, reconnect", true)
		return
	}
	for _, m := range pending {
		if m.off.Epoch == sub.last.Epoch && !sub.last.Less(m.off) {
			continue // covered by replay or before the head
		}
		if !c.queueEventLocked(sub, m) {
			return
		}
	}
}

// reset handles a backplane Reset of sub's stream: events up to head may
// have been lost. A live subscription that has not passed head closes the
// connection with 1012 after writing its queue; one that has (it replayed
// further) lost nothing. During replay the Reset is applied when the replay
// ends: the live events this node lost may lie beyond what History
// returned.
func (c *conn) reset(sub *subscription, head backplane.Offset) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch sub.state {
	case subReplaying:
		if sub.resetTo == nil || sub.resetTo.Less(head) || sub.resetTo.Epoch != head.Epoch {
			sub.resetTo = &head
		}
	case subLive:
		if head.Epoch != sub.last.Epoch || sub.last.Less(head) {
			c.closeLocked(closeServiceRestart, "stream lost events, reconnect", true)
		}
	}
}

// endSubscription removes sub from the connection and the index, and from
// the backplane when unsubscribe is set (it was subscribed there).
func (c *conn) endSubscription(sub *subscription, unsubscribe bool) {
	c.mu.Lock()
	if sub.state == subEnded {
		c.mu.Unlock()
		return
	}
	sub.state = subEnded
	c.pendingSize -= sub.pendingBytes
	c.replaySize -= sub.replayBytes
	sub.pending, sub.pendingBytes, sub.replay, sub.replayBytes, sub.resetTo = nil, 0, nil, 0, nil
	if c.subs[sub.key] == sub {
		delete(c.subs, sub.key)
	}
	c.mu.Unlock()
	c.s.shard(sub.key.stream).remove(sub)
	if m := c.s.m; m != nil {
		m.Subscriptions.WithLabelValues("socketio").Dec()
	}
	if unsubscribe {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.s.bp.Unsubscribe(ctx, sub.key.stream); err != nil {
			c.log.Warn("backplane unsubscribe failed", "stream", sub.key.stream.String(), "err", err)
		}
	}
}

// endAll ends every subscription (connection teardown).
func (c *conn) endAll() {
	c.mu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	c.mu.Unlock()
	for _, sub := range subs {
		c.endSubscription(sub, true)
	}
}

// recover restores the subscriptions a reconnecting client names in its
// recovery state, replaying what it missed, and reports whether every one
// could be restored completely. When not, nothing is restored: the client
// gets a fresh session, as with Socket.IO, and rejoins. The CONNECT frame
// is queued before the replayed events.
func (c *conn) recover(state map[subKey]backplane.Offset, connectFrame []byte) bool {
	c.mu.Lock()
	for k := range state {
		if c.claims.CanRead(k.stream.Project, k.stream.Collection) != nil {
			c.mu.Unlock()
			return false
		}
	}
	c.mu.Unlock()
	type opened struct {
		sub    *subscription
		replay []*message
		size   int
		head   backplane.Offset
		since  backplane.Offset
		cursor backplane.Cursor
	}
	var subs []opened
	undo := func() {
		for _, o := range subs {
			c.endSubscription(o.sub, true)
		}
	}
	held := 0 // bytes of the first pages read so far
	for k, since := range state {
		sub, dup, code, _ := c.reserve(k)
		if sub == nil || dup || code != "" {
			undo()
			return false
		}
		c.mu.Lock()
		page := backplane.ReplayPage(c.s.cfg.MaxQueueBytes, c.queued+c.pendingSize+c.replaySize+held)
		c.mu.Unlock()
		hist, head, subscribed, err := c.openPage(sub, since.String(), page)
		if err != nil {
			c.log.Warn("recovery failed", "stream", k.stream.String(), "err", err)
			undo()
			return false
		}
		subs = append(subs, opened{sub: sub, head: head, since: since})
		if !hist.Recovered {
			hist.Release()
			undo()
			return false
		}
		// Encoded here, off the lock the writer pulls them under; the
		// audience is checked as they are pulled, with the claims then.
		o := &subs[len(subs)-1]
		var events []syncgate.Event
		o.cursor, events = backplane.NewCursor(since.String(), subscribed, hist)
		o.replay, o.size = encodeReplay(events, k.kind)
		hist.Release()
		held += o.size
	}
	c.mu.Lock()
	// Every restored subscription enters the state before the first
	// replayed event, so a client cut off mid-replay still names them all.
	ok := c.queueLocked(item{frame: connectFrame}, len(connectFrame))
	for _, o := range subs {
		ok = ok && c.queueLocked(item{op: opSet, key: o.sub.key, off: o.since}, itemOverhead)
	}
	if ok {
		for _, o := range subs {
			c.replayLocked(o.sub, o.replay, o.size, o.head, o.since, o.cursor)
		}
	}
	c.mu.Unlock()
	c.signal()
	return true
}

// refresh handles the `auth` event: same user, new expiry and grants;
// subscriptions the new token no longer allows end.
func (c *conn) refresh(ackID int64, token string) {
	claims, err := c.s.cfg.Verifier.Verify(c.ctx, token)
	if err != nil {
		c.s.authFailed(err)
		c.fail(ackID, evAuth, codeUnauthorized, err.Error())
		return
	}
	c.mu.Lock()
	if claims.Subject != c.claims.Subject {
		c.mu.Unlock()
		c.s.authFailed(&auth.TokenError{Reason: auth.ReasonClaims, Err: errors.New("subject changed")})
		c.fail(ackID, evAuth, codeForbidden, "token is for another user")
		c.requestClose(closeForbidden, "token is for another user", true)
		return
	}
	c.claims = claims
	c.expiry.Reset(time.Until(claims.ExpiresAt))
	var revoked []*subscription
	for _, sub := range c.subs {
		if claims.CanRead(sub.key.stream.Project, sub.key.stream.Collection) != nil {
			revoked = append(revoked, sub)
		}
	}
	c.mu.Unlock()
	for _, sub := range revoked {
		c.endSubscription(sub, true)
		c.leftFrame(sub.key)
		c.send(encodeEvent(evError, errorBody{Code: codeForbidden, Event: evAuth,
			Message: "refreshed token no longer grants " + sub.key.stream.String()}))
	}
	c.reply(ackID, struct {
		OK        bool      `json:"ok"`
		User      string    `json:"user"`
		ExpiresAt time.Time `json:"expiresAt"`
	}{true, claims.Subject, claims.ExpiresAt})
}

// leftFrame queues left-project or unsubscribed, removing key from the
// recovery state the client holds.
func (c *conn) leftFrame(key subKey) {
	var frame []byte
	if key.kind == kindProject {
		frame = encodeEventOpen(evLeftProject, roomBody{ProjectID: key.stream.Project, Room: roomOf(key.stream.Project)})
	} else {
		frame = encodeEventOpen(evUnsubscribed, collectionBody{Project: key.stream.Project, Collection: key.stream.Collection})
	}
	c.enqueue(item{frame: frame, withState: true, op: opRemove, key: key})
}

type roomBody struct {
	ProjectID string `json:"projectId"`
	Room      string `json:"room"`
}

type collectionBody struct {
	Project    string `json:"project"`
	Collection string `json:"collection"`
}

func (s *Server) dropped(reason string) {
	if s.m != nil {
		s.m.EventsDropped.WithLabelValues(reason).Inc()
	}
}

func (s *Server) authFailed(err error) {
	if s.m != nil {
		r := auth.Reason(err)
		if r == "" {
			r = "other"
		}
		s.m.AuthFailures.WithLabelValues(r).Inc()
	}
}

// validate checks the names of a subscription request.
func validate(project, collection string) error {
	return syncgate.ValidateSubscription(project, collection)
}
