package backplane

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/metrics"
)

// liveEvent is one event of a stream on its way to the Receiver.
type liveEvent struct {
	off  Offset
	ev   *syncgate.Event // nil: a Reset at off (an entry the gateway cannot decode, or a gap history cannot fill)
	size int             // bytes of the channel message
}

// handoff is what one step under b.mu decided to hand to the Receiver for
// stream s, in order. It is delivered after b.mu is released, with the
// stream's dmu held (the lock order on Redis).
type handoff struct {
	recv Receiver // b.recv when the step ran; nil after Close
	s    Stream
	evs  []liveEvent
}

func (h *handoff) add(le liveEvent) {
	if h != nil {
		h.evs = append(h.evs, le)
	}
}

// deliver calls the Receiver. No backplane lock but the stream's dmu is
// held.
func (h *handoff) deliver() {
	if h.recv == nil {
		return
	}
	for _, le := range h.evs {
		if le.ev == nil {
			h.recv.Reset(h.s, le.off)
		} else {
			h.recv.Receive(h.s, le.off, le.ev)
		}
	}
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
		st := g.channels[m.Channel]
		if g.gen != gen || b.closed || st == nil || st.refs == 0 {
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		// The lock order: the stream's delivery lock first, then the state
		// again (which may have changed meanwhile).
		st.dmu.Lock()
		defer st.dmu.Unlock()
		b.mu.Lock()
		if g.gen != gen || b.closed || g.channels[m.Channel] != st || st.refs == 0 {
			b.mu.Unlock()
			return
		}
		out := handoff{recv: b.recv, s: st.s}
		b.handleEventLocked(g, st, m, off, ev, err, &out)
		b.mu.Unlock()
		out.deliver()
	}
}

// handleEventLocked decides what becomes of a live message of st: handed
// to the Receiver through out, held back during a fill, or a fill when it
// cannot be placed. b.mu and st.dmu are held.
func (b *Redis) handleEventLocked(g *psGroup, st *chanState, m *redis.Message, off Offset, ev *syncgate.Event, err error, out *handoff) {
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
	b.deliverLocked(st, liveEvent{off, ev, len(m.Payload)}, out)
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

// deliverLocked hands a live event to the Receiver (through out), or holds
// it while the stream is being filled. b.mu is held.
func (b *Redis) deliverLocked(st *chanState, le liveEvent, out *handoff) {
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
	b.handLocked(st, le, out)
}

// handLocked hands an event to the Receiver (through out) unless it was
// delivered already. b.mu is held.
func (b *Redis) handLocked(st *chanState, le liveEvent, out *handoff) {
	if st.hasLast && le.off.Epoch == st.last.Epoch && !st.last.Less(le.off) {
		return // already delivered (a fill overlapping live delivery)
	}
	st.last, st.hasLast = le.off, true
	if le.ev == nil {
		// Redis took an event the gateway cannot decode: never a silent
		// gap, subscribers reload and continue after it.
		b.countInvalid()
	}
	out.add(le)
}
