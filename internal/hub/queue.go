package hub

import (
	"strconv"

	"github.com/syncgate/syncgate/internal/backplane"
)

// deliver queues a live event for sub. It never blocks.
func (s *Session) deliver(sub *Subscription, m *Message) {
	s.mu.Lock()
	if s.closeCode != 0 || sub.state == subEnded {
		s.mu.Unlock()
		s.h.dropped(dropClosing)
		return
	}
	if m.aud != nil && !m.aud.Allows(s.claims.Subject, s.claims.Roles) {
		s.mu.Unlock()
		s.h.dropped(dropAudience)
		return
	}
	if sub.state == subReplaying {
		size := len(m.data[sub.enc]) + s.overhead
		if len(sub.rp.pending) >= s.h.cfg.MaxPendingEvents || s.queued+s.pendingSize+size > s.h.cfg.MaxQueueBytes {
			s.failSlowLocked("pending events during replay over the bound")
		} else {
			sub.rp.pending = append(sub.rp.pending, m)
			sub.rp.pendingBytes += size
			s.pendingSize += size
		}
		s.mu.Unlock()
		return
	}
	if s.queueEventLocked(sub, m) {
		s.kickLocked()
	}
	s.mu.Unlock()
}

// queueEventLocked appends m unless the subscription already has it. When
// the offset's epoch differs from the subscription's, the stream lost its
// data: the transport's Gap comes first. s.mu held.
func (s *Session) queueEventLocked(sub *Subscription, m *Message) bool {
	if m.off.Epoch != sub.last.Epoch {
		if !s.gapLocked(sub, backplane.Offset{Epoch: m.off.Epoch}) {
			return false
		}
	} else if !sub.last.Less(m.off) {
		s.h.dropped(dropDuplicate)
		return false
	}
	sub.last = m.off
	return s.queueLocked(item{sub: sub, msg: m}, len(m.data[sub.enc])+s.overhead)
}

// gapLocked tells the client that sub lost events up to head, as its
// transport says it: a frame, after which sub continues from head, or a
// close with 1012. It reports whether the session goes on. s.mu held.
func (s *Session) gapLocked(sub *Subscription, head backplane.Offset) bool {
	f, closeAfter := s.t.Gap(sub, head)
	if closeAfter {
		s.closeLocked(CloseServiceRestart, "stream lost events, reconnect", true)
		return false
	}
	sub.last = head
	return s.queueFrameLocked(f)
}

func (s *Session) queueFrameLocked(f Frame) bool {
	return s.queueLocked(item{frame: &f}, len(f.Data)+s.overhead)
}

// queueLocked appends it, or closes the session with 4008 when the queue
// would exceed its bound. s.mu held.
func (s *Session) queueLocked(it item, size int) bool {
	if s.closeCode != 0 {
		return false
	}
	if s.queued+size > s.h.cfg.MaxQueueBytes {
		s.failSlowLocked("queue over " + strconv.Itoa(s.h.cfg.MaxQueueBytes) + " bytes")
		return false
	}
	s.queue = append(s.queue, it)
	s.queued += size
	return true
}

// failSlowLocked closes a session that cannot keep up: its queue is
// dropped (the client resumes from its last offset) and it gets 4008.
func (s *Session) failSlowLocked(why string) {
	if s.closeCode != 0 {
		return
	}
	n := 0
	for _, it := range s.queue {
		if it.msg != nil {
			n++
		}
	}
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
	s.closeLocked(CloseSlowConsumer, "slow consumer: "+why, false)
	if m := s.h.m; m != nil {
		m.SlowConsumers.WithLabelValues(s.transport).Inc()
		m.EventsDropped.WithLabelValues(dropSlowClient).Add(float64(n))
	}
	s.Log().Warn("closing slow consumer", "code", int(CloseSlowConsumer), "why", why, "dropped_events", n)
}

// stalled closes with 4008 a session whose client read nothing for the
// write timeout (or missed a heartbeat), unless a close is decided.
func (s *Session) stalled(why string) {
	s.mu.Lock()
	s.failSlowLocked(why)
	s.mu.Unlock()
}

// reset handles a backplane Reset of sub's stream: events up to head may
// have been lost. During replay it is applied when the replay ends (the
// live events this node lost may lie beyond what History returned); a live
// subscription that already passed head (it replayed further) lost nothing.
func (s *Session) reset(sub *Subscription, head backplane.Offset) {
	s.mu.Lock()
	switch sub.state {
	case subReplaying:
		sub.noteResetLocked(head)
	case subLive:
		if (head.Epoch != sub.last.Epoch || sub.last.Less(head)) && s.gapLocked(sub, head) {
			s.kickLocked()
		}
	}
	s.mu.Unlock()
}

// noteResetLocked remembers the furthest Reset that arrived during replay.
func (sub *Subscription) noteResetLocked(head backplane.Offset) {
	rp := sub.rp
	if rp.resetTo == nil || rp.resetTo.Less(head) || rp.resetTo.Epoch != head.Epoch {
		rp.resetTo = &head
	}
}
