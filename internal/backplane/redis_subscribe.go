package backplane

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

type subWaiter struct {
	target int
	done   chan struct{}
}

// groupOf is the key of the pub/sub connection that carries s: its
// project on Redis Cluster (whose channels live on the project's slot),
// the one connection ("") on a single Redis.
func (b *Redis) groupOf(s Stream) string {
	if b.cluster {
		return s.Project
	}
	return ""
}

// Subscribe implements Backplane. The first local subscription to a stream
// subscribes its channel and returns once Redis confirmed it.
func (b *Redis) Subscribe(ctx context.Context, s Stream) error {
	ch, group := channelName(s), b.groupOf(s)
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
	ch, group := channelName(s), b.groupOf(s)
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
