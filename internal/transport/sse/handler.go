package sse

import (
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/hub"
)

// Config configures the endpoint. A zero field means its default.
type Config struct {
	// KeepAlive is how often an idle stream gets a comment line; default
	// 15s (below the 30–60s idle timeouts of common proxies).
	KeepAlive time.Duration
	// Retry, when set, is sent first on every stream as its `retry:`
	// field: the delay before the browser reconnects a stream that ended.
	// Unset, the browser's own default applies (about 3s).
	Retry time.Duration
}

// DefaultKeepAlive is Config.KeepAlive's default.
const DefaultKeepAlive = 15 * time.Second

// Handler serves GET /v1/sse on a hub, the node's session engine: the
// session's connection limit, drain, queue bound, slow-consumer close,
// replay and token expiry are the engine's, the same as on every
// transport.
type Handler struct {
	h   *hub.Hub
	cfg Config
}

// New returns the /v1/sse handler of h.
func New(h *hub.Hub, cfg Config) *Handler {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	return &Handler{h: h, cfg: cfg}
}

// ServeHTTP checks the request (400, 401, 403 before any stream), then
// streams its subscriptions until the session ends: at token expiry, for a
// slow consumer, on drain, or when the client goes away.
func (x *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := x.h
	cfg := h.Config()
	if h.Draining() {
		answer(w, r, unavailable("node is draining, reconnect to another"))
		return
	}
	if !allowOrigin(w, r, cfg.OriginPatterns) {
		answer(w, r, &RequestError{Status: http.StatusForbidden, Code: CodeForbidden,
			Message: "origin " + r.Header.Get("Origin") + " is not allowed (SYNCGATE_ALLOWED_ORIGINS)"})
		return
	}
	req, err := ParseRequest(r, cfg.MaxSubscriptions)
	if err != nil {
		answer(w, r, asRequestError(err))
		return
	}
	if req.Token == "" {
		h.AuthFailed(&auth.TokenError{Reason: auth.ReasonMissing, Err: errors.New("no token")})
		answer(w, r, errNoToken)
		return
	}
	claims, err := h.Verify(auth.WithTransport(r.Context(), auth.TransportSSE), req.Token)
	if err != nil {
		answer(w, r, Refusal(err))
		return
	}
	if err := Authorize(claims, req); err != nil {
		answer(w, r, asRequestError(err))
		return
	}
	sess, err := h.Register(auth.WithTransport(edge.Detach(r.Context()), auth.TransportSSE),
		// Verified already: no authentication deadline.
		hub.SessionConfig{Transport: hub.TransportSSE, Heartbeat: x.cfg.KeepAlive, AuthDeadline: -1})
	if err != nil {
		msg := "node is full, try again later"
		if hub.RefusalCode(err) == hub.CloseServiceRestart {
			msg = "node is draining, reconnect to another"
		}
		answer(w, r, unavailable(msg))
		return
	}
	edge.Authenticated(r.Context())
	if err := edge.Stream(w); err != nil {
		sess.Log().Warn("cannot lift the HTTP timeouts for a stream", "err", err)
	}
	t := newTransport(w, req.Subs, x.cfg, cfg.WriteTimeout)
	sess.Attach(t)
	sess.Authenticate(claims)
	sess.Run("reader", func() {
		if !x.open(sess, t, r) {
			return
		}
		select {
		case <-r.Context().Done(): // the client went away
		case <-sess.Context().Done(): // the session ended
		}
	})
	sess.Finish()
	t.ended(cfg.Metrics)
	if t.finish() {
		panic(http.ErrAbortHandler) // see answer
	}
}

// open opens every subscription and begins them behind their `subscribed`
// messages; it reports false when the request was refused instead.
func (x *Handler) open(sess *hub.Session, t *transport, r *http.Request) bool {
	subs := make([]*hub.Subscription, 0, len(t.subs))
	frames := make([]hub.Frame, 0, len(t.subs))
	for i, s := range t.subs {
		sub, opened, err := sess.Open(hub.OpenRequest{Key: hub.SubKey{Stream: s.Stream}, Since: s.Since, Encoding: hub.JSON, Tag: i})
		if err != nil {
			t.refuse(t.w, r, openRefusal(s.Stream, err))
			return false
		}
		subs = append(subs, sub)
		frames = append(frames, t.subscribedFrame(i, opened.Head.String(), opened.Recovered))
	}
	sess.Begin(frames, subs...)
	return true
}

// openRefusal maps an Open that failed to an answer: the backplane failed
// (503, try again), or the token expired meanwhile (401). The other
// refusals of Open were answered before the session began.
func openRefusal(s backplane.Stream, err error) *RequestError {
	var he *hub.Error
	errors.As(err, &he)
	switch {
	case he == nil:
	case he.Code == hub.CodeInternal:
		return unavailable(he.Message)
	case he.Code == hub.CodeUnauthorized:
		return &RequestError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: he.Message}
	}
	return &RequestError{Status: http.StatusInternalServerError, Code: hub.CodeInternal, Message: s.String() + ": " + err.Error()}
}

func unavailable(msg string) *RequestError {
	return &RequestError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: msg}
}

func asRequestError(err error) *RequestError {
	var re *RequestError
	if errors.As(err, &re) {
		return re
	}
	return &RequestError{Status: http.StatusInternalServerError, Code: hub.CodeInternal, Message: err.Error()}
}

// answer refuses a request. A temporary failure (503: the node drains or
// is full, the authentication backend failed) is, for an EventSource
// (Accept: text/event-stream), a network error rather than a status: the
// browser retries a network error, while any status but 200 stops it for
// good. Every other client gets the status and its JSON body.
func answer(w http.ResponseWriter, r *http.Request, e *RequestError) {
	if abortFor(r, e) {
		panic(http.ErrAbortHandler) // net/http closes the connection without an answer
	}
	WriteError(w, e)
}

// abortFor reports whether e is answered to r as a network error.
func abortFor(r *http.Request, e *RequestError) bool {
	return e.Status == http.StatusServiceUnavailable && strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// allowOrigin allows a request without an Origin, from its own origin, or
// from an origin whose host matches one of patterns (path.Match, as for
// WebSocket upgrades), which then gets the CORS header that lets the page
// read the stream.
func allowOrigin(w http.ResponseWriter, r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
			return true
		}
	}
	return false
}
