package hub

import (
	"context"
	"strconv"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

// Open opens a subscription for req: it checks the names, the token's
// grant and the per-session limit, indexes the subscription (live events
// are buffered from now on), subscribes the backplane, and reads the first
// page of history after req.Since through the node's HistoryReader. The
// subscription delivers nothing until Begin. A refusal is an *Error
// (CodeBadRequest, CodeForbidden, CodeDuplicate, CodeLimitExceeded,
// CodeInternal); the session then holds no subscription for the key.
// It blocks on the backplane; the transport's reader calls it.
func (s *Session) Open(req OpenRequest) (*Subscription, Opened, error) {
	st := req.Key.Stream
	if err := syncgate.ValidateSubscription(st.Project, st.Collection); err != nil {
		return nil, Opened{}, refused(CodeBadRequest, err.Error())
	}
	var since backplane.Offset
	if req.Since != "" {
		var err error
		if since, err = backplane.ParseOffset(req.Since); err != nil {
			return nil, Opened{}, refused(CodeBadRequest, "since: "+err.Error())
		}
	}
	sub, rerr := s.reserve(req)
	if rerr != nil {
		return nil, Opened{}, rerr
	}
	fail := func(err error, subscribed bool) (*Subscription, Opened, error) {
		s.Log().Warn("subscribe failed", "stream", st.String(), "err", err)
		s.end(sub, subscribed)
		return nil, Opened{}, refused(CodeInternal, "subscribe "+st.String()+": "+err.Error())
	}
	if err := s.h.bp.Subscribe(s.ctx, st); err != nil {
		return fail(err, false)
	}
	subscribed := time.Now()
	page := backplane.Page{MaxEvents: 1, MaxBytes: 1} // the head only
	if req.Since != "" {
		s.mu.Lock()
		page = backplane.ReplayPage(s.h.cfg.MaxQueueBytes, s.queued+s.pendingSize+s.replaySize)
		s.mu.Unlock()
	}
	hist, err := s.h.cfg.History.Read(s.ctx, st, req.Since, page, subscribed)
	if err != nil {
		return fail(err, true)
	}
	head, err := backplane.ParseOffset(hist.Head)
	if err != nil {
		hist.Release()
		return fail(err, true)
	}
	// Encoded here, off the lock the writer pulls them under; the audience
	// is checked as they are pulled, with the claims then.
	cursor, events := backplane.NewCursor(req.Since, subscribed, hist)
	replay, size := s.h.encodeReplay(events, req.Encoding, s.overhead)
	hist.Release()
	opened := Opened{Head: head, Recovered: hist.Recovered}
	s.mu.Lock()
	if sub.state == subReplaying {
		sub.rp.cursor, sub.rp.head = cursor, head
		// Where the client stands once Begin starts it: after since when
		// history covers it, else live from the head.
		sub.last = since
		if !opened.Recovered || req.Since == "" {
			sub.last = head
		}
		sub.rp.replay, sub.rp.replayBytes = replay, size
		s.replaySize += size
	}
	s.mu.Unlock()
	return sub, opened, nil
}

// reserve adds a subscription for req in state replaying, or says why not.
func (s *Session) reserve(req OpenRequest) (*Subscription, *Error) {
	st := req.Key.Stream
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims == nil {
		return nil, refused(CodeUnauthorized, "not authenticated")
	}
	if err := s.claims.CanRead(st.Project, st.Collection); err != nil {
		return nil, refused(CodeForbidden, err.Error())
	}
	if s.subs.get(req.Key) != nil {
		return nil, refused(CodeDuplicate, "already subscribed to "+st.String())
	}
	if s.subs.len() >= s.h.cfg.MaxSubscriptions {
		return nil, refused(CodeLimitExceeded, "at most "+strconv.Itoa(s.h.cfg.MaxSubscriptions)+" subscriptions per connection")
	}
	sub := &Subscription{sess: s, key: req.Key, enc: req.Encoding, tag: req.Tag, state: subReplaying, rp: &replayState{}}
	s.subs.put(sub)
	s.h.shard(st).add(sub)
	if m := s.h.m; m != nil {
		m.Subscriptions.WithLabelValues(s.transport).Inc()
	}
	return sub, nil
}

// Begin queues frames, then starts subs, subscriptions Open returned: each
// replays what history holds after its since (the writer pulls it a chunk
// at a time as the client reads, reading further pages as the queue has
// room, so a client catching up on more history than its queue bound is
// not mistaken for a slow consumer), then goes live with the events that
// arrived meanwhile, skipping what the replay covered: no gap and no
// duplicate at the seam. A subscription that is not recovered starts live
// from the head. The frames come before any replayed event.
func (s *Session) Begin(frames []Frame, subs ...*Subscription) {
	s.mu.Lock()
	ok := true
	for _, f := range frames {
		if ok = s.queueFrameLocked(f); !ok {
			break
		}
	}
	for _, sub := range subs {
		if !ok || sub.state != subReplaying || sub.rp.begun {
			continue
		}
		sub.rp.begun = true
		if len(sub.rp.replay) == 0 && !sub.rp.cursor.More {
			s.finishReplayLocked(sub)
		} else {
			s.replaying = append(s.replaying, sub)
		}
	}
	s.kickLocked()
	s.mu.Unlock()
}

// Lookup returns the session's subscription for key, or nil.
func (s *Session) Lookup(key SubKey) *Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs.get(key)
}

// End ends sub: it leaves the session, the index and the backplane. What
// of it is queued is still written. Ending an ended subscription does
// nothing.
func (s *Session) End(sub *Subscription) {
	s.end(sub, true)
}

// end is End; unsubscribe says whether the backplane holds a reference to
// release.
func (s *Session) end(sub *Subscription, unsubscribe bool) {
	s.mu.Lock()
	if sub.state == subEnded {
		s.mu.Unlock()
		return
	}
	sub.state = subEnded
	if rp := sub.rp; rp != nil {
		s.pendingSize -= rp.pendingBytes
		s.replaySize -= rp.replayBytes
		sub.rp = nil
	}
	s.subs.remove(sub)
	s.mu.Unlock()
	s.h.shard(sub.key.Stream).remove(sub)
	if m := s.h.m; m != nil {
		m.Subscriptions.WithLabelValues(s.transport).Dec()
	}
	if unsubscribe {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.h.bp.Unsubscribe(ctx, sub.key.Stream); err != nil {
			s.Log().Warn("backplane unsubscribe failed", "stream", sub.key.Stream.String(), "err", err)
		}
	}
}
