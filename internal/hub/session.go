package hub

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/guard"
)

// SessionConfig describes a session to Hub.Register.
type SessionConfig struct {
	// Transport is the transport's name (TransportWS, …): the `transport`
	// label of the session's metrics. Required.
	Transport string
	// ID names the session in logs and to the client; default a node-unique
	// id.
	ID string
	// Overhead is added to the queued size of every item, for what the
	// transport adds to each (Socket.IO's recovery state).
	Overhead int
	// Heartbeat is the first interval after which the writer calls
	// Transport.Heartbeat; default Config.PingInterval.
	Heartbeat time.Duration
	// AuthDeadline is how long the session may stay unauthenticated before
	// it is closed with 4001; default Config.AuthTimeout. Negative is none:
	// the transport verifies a credential the request carried at once,
	// bounded by the verifier's own timeout.
	AuthDeadline time.Duration
	// AuthReason is the close reason of a session that is not
	// authenticated within AuthDeadline; default "not authenticated within
	// <AuthDeadline>" (unused without a deadline).
	AuthReason string
}

// item is one queued outbound thing: an event of a subscription, or a
// control frame (sub == nil).
type item struct {
	sub   *Subscription
	msg   *Message
	frame *Frame // a pointer keeps items small: events are the many
}

// Session is one client connection, whatever its transport: its claims,
// its subscriptions, its byte-bounded outbound queue and the writer that
// drains it into the Transport.
//
// The transport's reader (one goroutine) calls Open, Begin, End, Refresh and
// Send; the backplane's fan-out calls the unexported delivery methods; the
// writer, started by Attach, alone calls the Transport's write methods.
type Session struct {
	h         *Hub
	id        string
	transport string
	overhead  int
	heartbeat time.Duration
	authWhy   string
	authIn    time.Duration // the authentication deadline; negative: none
	ctx       context.Context
	cancel    context.CancelFunc
	abort     chan struct{} // closed by a close that drops the queue: writes stop waiting for room
	writer    sync.WaitGroup

	mu          sync.Mutex
	t           Transport // set once by Attach
	claims      *auth.Claims
	subs        subSet
	queue       []item
	queued      int // bytes in queue
	closeCode   CloseCode
	closeReason string
	closeFlush  bool
	aborted     bool // abort is closed
	authTimer   *time.Timer
	expiry      *time.Timer
	heartbeatAt *time.Timer // sets heartbeatDue after the interval
	// The writer runs only while there is something to do: kickLocked
	// starts it, and it ends when the queue is empty (writing false), so an
	// idle session costs no goroutine besides its reader.
	writing      bool
	heartbeatDue bool
	stopped      bool            // Finish began or the writer closed: no writer starts again
	replaying    []*Subscription // subscriptions whose history the writer is pulling
	pendingSize  int             // bytes in every subscription's pending buffer
	replaySize   int             // bytes in every subscription's replay

	spare []item     // writer-owned second queue buffer
	msgs  []*Message // writer-owned batch of one subscription's events
}

// Register admits a new session unless the node drains (1012) or holds
// Config.MaxConnections sessions over all transports (1013): the error is
// then the CloseCode to refuse the client with. ctx carries the request's
// values (the session's context derives from it); the session lives until
// Finish. The caller creates its Transport, then calls Attach.
func (h *Hub) Register(ctx context.Context, cfg SessionConfig) (*Session, error) {
	if cfg.Transport == "" {
		return nil, errors.New("hub: SessionConfig.Transport is required")
	}
	if cfg.ID == "" {
		cfg.ID = h.nodeID + "-" + strconv.FormatUint(h.nextID.Add(1), 10)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = h.cfg.PingInterval
	}
	if cfg.AuthDeadline == 0 {
		cfg.AuthDeadline = h.cfg.AuthTimeout
	}
	if cfg.AuthReason == "" && cfg.AuthDeadline > 0 {
		cfg.AuthReason = "not authenticated within " + cfg.AuthDeadline.String()
	}
	s := &Session{
		h: h, id: cfg.ID, transport: cfg.Transport, overhead: cfg.Overhead, heartbeat: cfg.Heartbeat,
		authWhy: cfg.AuthReason, authIn: cfg.AuthDeadline,
		abort: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if code := h.register(s); code != 0 {
		s.cancel()
		return nil, code
	}
	return s, nil
}

// ID is the session's id.
func (s *Session) ID() string { return s.id }

// Log is the session's logger (transport and id attached). It is made at
// each call rather than kept: a logger with attributes costs a few hundred
// bytes per session, and sessions log rarely.
func (s *Session) Log() *slog.Logger { return s.h.log.With("transport", s.transport, "conn", s.id) }

// Hub is the session's engine.
func (s *Session) Hub() *Hub { return s.h }

// Context ends when the session ends: read with it.
func (s *Session) Context() context.Context { return s.ctx }

// Abort closes when a close that drops the queue is decided; a transport's
// write that waits for the peer to make room gives up then (ErrAborted).
func (s *Session) Abort() <-chan struct{} { return s.abort }

// Attach hands the session its transport and starts the heartbeat and the
// authentication deadline; the writer starts whenever there is something
// to write. Call it once, right after Register.
func (s *Session) Attach(t Transport) {
	s.mu.Lock()
	s.t = t
	if s.claims == nil && s.authIn > 0 {
		s.authTimer = time.AfterFunc(s.authIn, func() {
			s.guard().Run("auth timer", func() {
				s.mu.Lock()
				authed := s.claims != nil
				s.mu.Unlock()
				if !authed {
					s.Close(CloseUnauthorized, s.authWhy, true)
				}
			}, s.fatal)
		})
	}
	s.heartbeatAt = time.AfterFunc(s.heartbeat, func() {
		s.mu.Lock()
		s.heartbeatDue = true
		s.kickLocked()
		s.mu.Unlock()
	})
	if len(s.queue) > 0 || s.closeCode != 0 {
		s.kickLocked()
	}
	s.mu.Unlock()
}

// kickLocked starts the writer unless it runs, the session has no
// transport yet, or no writer may start any more. s.mu held.
func (s *Session) kickLocked() {
	if s.writing || s.stopped || s.t == nil {
		return
	}
	s.writing = true
	s.writer.Add(1)
	go func() {
		defer s.writer.Done()
		s.guard().Run("writer", s.writeLoop, s.writerPanicked)
	}()
}

// guard is the session's recover boundary.
func (s *Session) guard() guard.Guard {
	return guard.Guard{Log: s.h.log, Metrics: s.h.m, Transport: s.transport}
}

// Run runs f, a goroutine of the transport's (its reader), under the
// session's recover boundary: a panic closes the session with 1011.
func (s *Session) Run(name string, f func()) {
	s.guard().Run(name, f, s.fatal)
}

// Handle runs f, the reader's reading and handling of one client message,
// on a goroutine that ends with it, under the session's recover boundary,
// and waits for it. A parked goroutine keeps the stack it has grown to for
// the connection's whole life; reading and handling messages (frames,
// token checks, JSON, logging, history) on a goroutine of its own keeps
// the reader's stack that of its wait between messages
// (wsconn.Socket.Serve), the 2 KiB minimum. It reports false when f
// panicked: the session is closing with 1011 and the reader should return.
func (s *Session) Handle(f func()) bool {
	done := make(chan bool, 1)
	go func() {
		completed := false
		defer func() { done <- completed }()
		s.guard().Run("reader", func() { f(); completed = true }, s.fatal)
	}()
	return <-done
}

// Authenticate makes the session authenticated with claims: subscriptions
// may be opened, and at the claims' expiry the session asks the verifier
// again (auth.RenewAtExpiry) and closes with 4009 unless renewed or
// refreshed.
func (s *Session) Authenticate(claims *auth.Claims) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims = claims
	if s.authTimer != nil {
		s.authTimer.Stop()
	}
	s.expiry = time.AfterFunc(time.Until(claims.ExpiresAt), func() {
		s.guard().Run("expiry timer", func() {
			if code, reason := auth.RenewAtExpiry(s.ctx, &s.mu, &s.claims, &s.expiry); code != 0 {
				s.Close(CloseCode(code), reason, true)
			}
		}, s.fatal)
	})
}

// Claims are the session's current claims (nil before Authenticate).
func (s *Session) Claims() *auth.Claims {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims
}

// Refresh handles a fresh token on an authenticated session: the same user,
// a new expiry and new grants. Subscriptions the new token no longer grants
// are ended and returned, for the transport to tell the client. A token for
// another user returns an Error with CodeForbidden (the transport then
// closes the session with 4003); a refused token an Error with
// CodeUnauthorized. On error the session is unchanged.
func (s *Session) Refresh(token string) (*auth.Claims, []*Subscription, error) {
	claims, err := s.h.Verify(s.ctx, token)
	if err != nil {
		return nil, nil, refused(CodeUnauthorized, err.Error())
	}
	s.mu.Lock()
	if s.claims == nil || claims.Subject != s.claims.Subject {
		s.mu.Unlock()
		s.h.AuthFailed(&auth.TokenError{Reason: auth.ReasonClaims, Err: errors.New("subject changed")})
		return nil, nil, refused(CodeForbidden, "token is for another user")
	}
	s.claims = claims
	s.expiry.Reset(time.Until(claims.ExpiresAt))
	var revoked []*Subscription
	for _, sub := range s.subs.all() {
		if claims.CanRead(sub.key.Stream.Project, sub.key.Stream.Collection) != nil {
			revoked = append(revoked, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range revoked {
		s.End(sub)
	}
	return claims, revoked, nil
}

// Send queues a control frame; false when the session is closing (or the
// frame overflowed the queue, which closes it with 4008).
func (s *Session) Send(f Frame) bool {
	s.mu.Lock()
	ok := s.queueFrameLocked(f)
	if ok {
		s.kickLocked()
	}
	s.mu.Unlock()
	return ok
}

// Close asks the writer to close the session with code and reason, after
// writing what is queued when flush is set. The first close wins.
func (s *Session) Close(code CloseCode, reason string, flush bool) {
	s.mu.Lock()
	s.closeLocked(code, reason, flush)
	s.mu.Unlock()
}

// closeLocked records the close unless one is decided; a close that drops
// the queue also stops the writer waiting for room. s.mu held.
func (s *Session) closeLocked(code CloseCode, reason string, flush bool) {
	if s.closeCode == 0 {
		s.closeCode, s.closeReason, s.closeFlush = code, reason, flush
		if !flush && !s.aborted {
			s.aborted = true
			close(s.abort)
		}
	}
	s.kickLocked()
}

// cut ends the session at once, without a close frame (a drain out of
// time).
func (s *Session) cut() {
	s.mu.Lock()
	t := s.t
	s.mu.Unlock()
	if t != nil {
		t.Close(CloseAbnormal, "")
	}
	s.cancel()
}

// Finish ends the session when the transport's reader ends, however it
// ends: a close the writer is making is let finish (bounded by the write
// timeout and the close handshake), then every subscription ends, the
// timers stop and the session leaves the registry. The transport then
// releases its connection.
func (s *Session) Finish() {
	s.mu.Lock()
	s.stopped = true // a close decided before this has its writer already
	for _, t := range []*time.Timer{s.authTimer, s.expiry, s.heartbeatAt} {
		if t != nil {
			t.Stop()
		}
	}
	code := s.closeCode
	s.mu.Unlock()
	if code == 0 {
		s.cancel()
	}
	s.writer.Wait()
	s.cancel()
	s.mu.Lock()
	subs := s.subs.all()
	s.mu.Unlock()
	for _, sub := range subs {
		s.End(sub)
	}
	s.h.unregister(s)
}

// fatal closes s with 1011 after a panic in one of its goroutines other
// than the writer; the writer sends the close.
func (s *Session) fatal() {
	s.Close(CloseInternalError, "internal error", false)
}

// writerPanicked closes s with 1011 from the writer goroutine, whose loop
// is gone; the transport's reader then ends and Finish runs.
func (s *Session) writerPanicked() {
	s.Close(CloseInternalError, "internal error", false)
	s.t.Close(CloseInternalError, "internal error")
	s.writerDone()
}

// writerDone ends the writer for good, after it closed or cut the
// transport: none starts again, and the session's context ends, which ends
// the transport's reader.
func (s *Session) writerDone() {
	s.mu.Lock()
	s.stopped, s.writing = true, false
	s.mu.Unlock()
	s.cancel()
}
