package backplane

import (
	"context"
	"time"
)

// The live events held back during a fill are bounded per stream in count
// and bytes, and node-wide in bytes; beyond that they are dropped and the
// stream is filled again from history, which says recovered:false
// (Receiver.Reset) when it no longer holds them.
var (
	maxFillBuffer          = 100_000
	maxFillBufferBytes     = 32 << 20
	maxFillBufferNodeBytes = 256 << 20
)

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
//
// The page and the held-back events are handed to the Receiver after mu
// is released, with st.dmu held from before the decision until they are
// delivered, so they cannot overtake or be overtaken by live delivery.
func (b *Redis) applyFill(g *psGroup, st *chanState, since string, h History) (string, bool) {
	head, headErr := ParseOffset(h.Head)
	st.dmu.Lock()
	defer st.dmu.Unlock()
	b.mu.Lock()
	out := handoff{recv: b.recv, s: st.s}
	next, more := b.applyFillLocked(g, st, since, h, head, headErr, &out)
	b.mu.Unlock()
	out.deliver()
	return next, more
}

// applyFillLocked is applyFill's decision; what is to be delivered goes to
// out. b.mu and st.dmu are held.
func (b *Redis) applyFillLocked(g *psGroup, st *chanState, since string, h History, head Offset, headErr error, out *handoff) (string, bool) {
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
			b.handLocked(st, liveEvent{off: off, ev: ev}, out)
		}
		if h.More && len(h.Events) > 0 && st.refs > 0 {
			return h.Events[len(h.Events)-1].Offset, true
		}
	default:
		b.log.Warn("gap cannot be filled from history (trimmed, or Redis lost its data); subscribers are told to reload",
			"stream", st.s.String(), "since", since, "head", h.Head)
		st.last, st.hasLast = head, true
		out.add(liveEvent{off: head})
	}
	st.filling = false
	buf := st.buf
	b.dropBufLocked(st)
	for _, le := range buf {
		b.deliverLocked(st, le, out)
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
