package hub

import (
	"errors"
	"time"
)

// writeLoop owns every write to the transport while it runs (kickLocked
// starts it when there is something to do: queued items, a decided close,
// a due heartbeat). It takes the whole queue at once and writes it (one
// WriteEvents per run of a subscription's events between control frames),
// pulls the next chunk of any replay, and ends when nothing is left, or
// after closing the transport when a close was decided. A client that
// reads nothing for WriteTimeout, or misses a heartbeat, is closed with
// 4008. It runs under the session's recover boundary (kickLocked).
func (s *Session) writeLoop() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.pullReplayLocked() // the next chunk of any replay, now that the client took the last
		}
		heartbeat := s.heartbeatDue
		s.heartbeatDue = false
		batch := s.queue
		code, flush := s.closeCode, s.closeFlush
		if s.ctx.Err() != nil || (len(batch) == 0 && code == 0 && !heartbeat) {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.queue, s.queued = s.spare[:0], 0
		s.mu.Unlock()

		var err error
		if heartbeat && code == 0 {
			var next time.Duration
			if next, err = s.t.Heartbeat(); err == nil {
				s.mu.Lock()
				s.heartbeatAt.Reset(next)
				s.mu.Unlock()
			} else {
				s.Log().Debug("heartbeat failed", "err", err)
			}
		}
		if err == nil && (code == 0 || flush) {
			if err = s.writeBatch(batch); err == nil {
				err = s.t.Flush()
			}
		}
		clear(batch) // let the GC have the messages
		s.spare = batch[:0]
		switch {
		case err == nil:
		case s.ctx.Err() != nil:
			s.writerDone()
			return
		case errors.Is(err, ErrAborted), errors.Is(err, ErrStalled):
			if errors.Is(err, ErrStalled) {
				why := err.Error()
				if err == ErrStalled {
					why = "read nothing for " + s.h.cfg.WriteTimeout.String()
				}
				s.stalled(why)
			}
			s.mu.Lock()
			code = s.closeCode
			s.mu.Unlock()
		default:
			s.Log().Debug("write failed", "err", err)
			s.t.Close(CloseAbnormal, "")
			s.writerDone()
			return
		}
		if code != 0 {
			s.mu.Lock()
			code, reason := s.closeCode, s.closeReason
			s.mu.Unlock()
			s.t.Close(code, reason)
			s.writerDone()
			return
		}
	}
}

// writeBatch writes queued items in order: control frames as they are, and
// between two control frames each subscription's events in one
// WriteEvents, in queue order.
func (s *Session) writeBatch(batch []item) error {
	for i := 0; i < len(batch); {
		if batch[i].sub == nil {
			if err := s.t.WriteFrame(*batch[i].frame); err != nil {
				return err
			}
			i++
			continue
		}
		j := i
		for j < len(batch) && batch[j].sub != nil {
			j++
		}
		for k := i; k < j; k++ {
			if batch[k].msg == nil {
				continue // already written with an earlier item of its subscription
			}
			if err := s.writeEvents(batch[k:j], batch[k].sub); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// writeEvents writes every unwritten event of sub in seg with one
// WriteEvents, marking them written, and counts them delivered.
func (s *Session) writeEvents(seg []item, sub *Subscription) error {
	msgs := s.msgs[:0]
	for k := range seg {
		it := &seg[k]
		if it.sub != sub || it.msg == nil {
			continue
		}
		msgs = append(msgs, it.msg)
		it.msg = nil
	}
	err := s.t.WriteEvents(sub, msgs)
	if m := s.h.m; m != nil && err == nil {
		m.EventsDelivered.Add(float64(len(msgs)))
		m.BatchSize.Observe(float64(len(msgs)))
		now := time.Now()
		for _, msg := range msgs {
			m.ObserveLatency(msg.ts, now)
		}
	}
	clear(msgs)
	s.msgs = msgs[:0]
	return err
}
