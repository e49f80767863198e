package hub

import (
	"github.com/syncgate/syncgate/internal/backplane"
)

// pullReplayLocked moves history of replaying subscriptions into the queue
// while it is below half its bound, finishing subscriptions whose history is
// all queued, and starts reading a subscription's next page of history
// when its replay is used up. It reports whether it queued anything. s.mu
// held; only the writer calls it, after each batch.
func (s *Session) pullReplayLocked() bool {
	if len(s.replaying) == 0 || s.closeCode != 0 {
		return false
	}
	limit := s.h.cfg.MaxQueueBytes / 2
	moved := false
	for len(s.replaying) > 0 {
		sub := s.replaying[0]
		for sub.state == subReplaying && len(sub.rp.replay) > 0 {
			m := sub.rp.replay[0]
			size := len(m.data[sub.enc]) + s.overhead
			if s.queued > 0 && s.queued+s.pendingSize+size > limit {
				return moved
			}
			sub.rp.replay[0] = nil
			sub.rp.replay = sub.rp.replay[1:]
			sub.rp.replayBytes -= size
			s.replaySize -= size
			if m.aud != nil && !m.aud.Allows(s.claims.Subject, s.claims.Roles) {
				continue
			}
			if sub.last.Less(m.off) {
				sub.last = m.off
				if !s.queueLocked(item{sub: sub, msg: m}, size) {
					return moved
				}
				moved = true
			}
		}
		if sub.state == subReplaying && (sub.rp.cursor.More || sub.rp.fetching) {
			if !sub.rp.fetching && (s.queued == 0 || s.queued+s.pendingSize < limit) {
				s.fetchLocked(sub)
			}
			return moved
		}
		if sub.state == subReplaying {
			s.finishReplayLocked(sub)
			moved = true
		}
		s.replaying[0] = nil
		s.replaying = s.replaying[1:]
	}
	return moved
}

// fetchLocked starts reading sub's next page of history. The read runs on
// a goroutine of the writer's group (Finish waits for it; the session's
// context ends it). s.mu held; only the writer calls it.
func (s *Session) fetchLocked(sub *Subscription) {
	sub.rp.fetching = true
	cur := sub.rp.cursor // the goroutine's until it hands it back
	page := backplane.ReplayPage(s.h.cfg.MaxQueueBytes, s.queued+s.pendingSize+s.replaySize)
	s.writer.Add(1)
	go func() {
		defer s.writer.Done()
		s.guard().Run("history read", func() {
			hist, err := s.h.cfg.History.Read(s.ctx, sub.key.Stream, cur.Since, page, cur.Subscribed)
			var replay []*Message
			var size int
			var head backplane.Offset
			if err == nil {
				head, err = backplane.ParseOffset(hist.Head)
				if err == nil {
					replay, size = s.h.encodeReplay(cur.Advance(hist), sub.enc, s.overhead)
				}
				hist.Release()
			}
			s.mu.Lock()
			s.pageReadLocked(sub, hist.History, head, cur, replay, size, err)
			s.kickLocked()
			s.mu.Unlock()
		}, s.fatal)
	}()
}

// pageReadLocked applies a page of history read for sub. A page that is not
// recovered (history trimmed past the cursor while the client was catching
// up) ends the replay as a Reset does (the transport's Gap). A read that
// failed closes the session with 1012, after what is queued: the client
// resumes from its last offset. s.mu held.
func (s *Session) pageReadLocked(sub *Subscription, hist backplane.History, head backplane.Offset, cur backplane.Cursor, replay []*Message, size int, err error) {
	if sub.state != subReplaying {
		return // live or ended: the replay state is gone
	}
	sub.rp.fetching = false
	if s.closeCode != 0 {
		return
	}
	switch {
	case err != nil:
		if s.ctx.Err() == nil {
			s.Log().Warn("reading history for a replay failed; closing so that the client resumes", "stream", sub.key.Stream.String(), "err", err)
			s.closeLocked(CloseServiceRestart, "history unavailable, resume", true)
		}
	case !hist.Recovered:
		sub.rp.cursor.More = false
		sub.noteResetLocked(head)
	default:
		sub.rp.cursor = cur
		sub.rp.replay, sub.rp.replayBytes = replay, size
		s.replaySize += size
		if until, ok := cur.Until(); ok {
			sub.rp.head = until
		}
	}
}

// finishReplayLocked makes sub live: a Reset that arrived during replay and
// reaches past what the replay covered is applied (the transport's Gap),
// then the live events that arrived meanwhile are queued, skipping what
// replay covered, so there is no gap and no duplicate at the seam. s.mu
// held.
func (s *Session) finishReplayLocked(sub *Subscription) {
	if sub.last.Less(sub.rp.head) {
		sub.last = sub.rp.head
	}
	pending, reset := sub.rp.pending, sub.rp.resetTo
	s.pendingSize -= sub.rp.pendingBytes
	s.replaySize -= sub.rp.replayBytes
	sub.rp, sub.state = nil, subLive
	if reset != nil && (reset.Epoch != sub.last.Epoch || sub.last.Less(*reset)) {
		if !s.gapLocked(sub, *reset) {
			return
		}
	}
	for _, m := range pending {
		if m.off.Epoch == sub.last.Epoch && !sub.last.Less(m.off) {
			continue // covered by replay or before the head
		}
		if !s.queueEventLocked(sub, m) {
			return
		}
	}
}
