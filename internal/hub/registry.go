package hub

import (
	"context"
	"errors"
	"time"
)

// RefusalCode is the close code of a Register error: 1012 (draining) or
// 1013 (node full, or any other refusal).
func RefusalCode(err error) CloseCode {
	code := CloseTryAgainLater
	errors.As(err, &code)
	return code
}

// Connections returns the number of open sessions over every transport.
func (h *Hub) Connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// register adds s unless the node drains or is full (MaxConnections counts
// every transport); it returns the close code to refuse with, or 0.
func (h *Hub) register(s *Session) CloseCode {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return CloseServiceRestart
	}
	if h.cfg.MaxConnections > 0 && len(h.sessions) >= h.cfg.MaxConnections {
		return CloseTryAgainLater
	}
	h.sessions[s] = struct{}{}
	h.wg.Add(1)
	if h.m != nil {
		h.m.Connections.WithLabelValues(s.transport).Inc()
	}
	return 0
}

func (h *Hub) unregister(s *Session) {
	h.mu.Lock()
	delete(h.sessions, s)
	h.mu.Unlock()
	if h.m != nil {
		h.m.Connections.WithLabelValues(s.transport).Dec()
	}
	h.wg.Done()
}

// Draining reports whether Drain has begun; /readyz and every transport's
// handshake ask it.
func (h *Hub) Draining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// Drain refuses new sessions and closes every live one, of every
// transport, with 1012, spreading the closes over most of grace so clients
// do not all reconnect elsewhere in one instant. Each session's queued
// events are written before its close. Drain returns when all sessions are
// gone, or when ctx ends, after which the remaining ones are cut at once.
func (h *Hub) Drain(ctx context.Context, grace time.Duration) error {
	h.mu.Lock()
	h.draining = true
	sessions := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	h.Delivered(ctx) // what was received before the drain is queued before its close

	spread := grace * 8 / 10
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i, s := range sessions {
		if d := time.Until(start.Add(spread * time.Duration(i) / time.Duration(len(sessions)))); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		s.Close(CloseServiceRestart, "service restart", true)
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		h.mu.Lock()
		for s := range h.sessions {
			s.cut()
		}
		h.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
