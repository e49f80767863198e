package sse

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
)

// Query parameters and headers of GET /v1/sse.
const (
	// ParamSub is repeated, one per subscription:
	// <project>/<collection>[@<offset>].
	ParamSub = "sub"
	// ParamToken carries the token for clients that cannot set
	// Authorization (EventSource). It is never logged.
	ParamToken = "token"
	// ParamLastEventID is a cursor for a new stream that takes over from an
	// old one (a new EventSource after a token refresh): the old stream's
	// lastEventId. The Last-Event-ID header wins over it.
	ParamLastEventID = "lastEventId"
	// HeaderLastEventID is what the browser sends when it reconnects.
	HeaderLastEventID = "Last-Event-ID"
)

// Subscription is one subscription of a stream.
type Subscription struct {
	Stream backplane.Stream
	// Since is where the subscription resumes: the cursor's position for
	// it when the request carries one, else the @offset of its sub=, else
	// "" (live from the stream's head).
	Since string
}

// Request is a parsed GET /v1/sse: the token and the subscriptions, in the
// order of the query.
type Request struct {
	Token string
	Subs  []Subscription
}

// Error codes of the JSON error bodies (those of /v1/publish and of the
// WebSocket `error` frame).
const (
	CodeBadRequest    = "bad_request"
	CodeLimitExceeded = "limit_exceeded"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeUnavailable   = "unavailable"
)

// RequestError refuses a request before its stream starts.
type RequestError struct {
	Status  int    // HTTP status
	Code    string // one of the Code constants
	Message string // names the bad value
}

func (e *RequestError) Error() string { return e.Message }

func badRequest(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// WriteError answers a request with e: its status and the JSON body of
// /v1/publish, {"error":{"code","message"}}. A 401 names the scheme and a
// 503 asks to retry after a second.
func WriteError(w http.ResponseWriter, e *RequestError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	switch e.Status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="syncgate"`)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(e.Status)
	body, _ := json.Marshal(map[string]map[string]string{"error": {"code": e.Code, "message": e.Message}})
	_, _ = w.Write(append(body, '\n'))
}

// ParseRequest reads the subscriptions, the token and the resume cursor of
// r, allowing at most maxSubs subscriptions. Its error is a *RequestError
// naming the bad value. It does not verify the token (see Authorize).
func ParseRequest(r *http.Request, maxSubs int) (*Request, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("query: %v", err)
	}
	raw := q[ParamSub]
	switch {
	case len(raw) == 0:
		return nil, badRequest("no subscription: add %s=<project>/<collection> to the query (repeat it for more)", ParamSub)
	case len(raw) > maxSubs:
		return nil, &RequestError{Status: http.StatusBadRequest, Code: CodeLimitExceeded,
			Message: strconv.Itoa(len(raw)) + " subscriptions, at most " + strconv.Itoa(maxSubs) + " per stream"}
	}
	req := &Request{Subs: make([]Subscription, 0, len(raw))}
	seen := make(map[backplane.Stream]bool, len(raw))
	for _, v := range raw {
		sub, err := parseSub(v)
		if err != nil {
			return nil, err
		}
		if seen[sub.Stream] {
			return nil, badRequest("%s %.80q: %s is subscribed twice", ParamSub, v, sub.Stream)
		}
		seen[sub.Stream] = true
		req.Subs = append(req.Subs, sub)
	}
	cursor, from := r.Header.Get(HeaderLastEventID), HeaderLastEventID
	if cursor == "" {
		cursor, from = q.Get(ParamLastEventID), ParamLastEventID
	}
	if cursor != "" {
		c, err := ParseCursor(cursor, maxSubs)
		if err != nil {
			return nil, badRequest("%s: %v", from, err)
		}
		for i := range req.Subs {
			if since, ok := c.Since(req.Subs[i].Stream); ok {
				req.Subs[i].Since = since
			}
		}
	}
	req.Token = auth.BearerToken(r.Header.Get("Authorization"))
	if req.Token == "" {
		req.Token = q.Get(ParamToken)
	}
	return req, nil
}

// parseSub parses one sub= value: <project>/<collection>[@<offset>].
func parseSub(v string) (Subscription, error) {
	name, since, hasSince := strings.Cut(v, "@")
	project, collection, ok := strings.Cut(name, "/")
	if !ok {
		return Subscription{}, badRequest("%s %.80q: want <project>/<collection>, optionally @<offset>", ParamSub, v)
	}
	if err := syncgate.ValidateSubscription(project, collection); err != nil {
		return Subscription{}, badRequest("%s %.80q: %v", ParamSub, v, err)
	}
	if hasSince {
		if _, err := backplane.ParseOffset(since); err != nil {
			return Subscription{}, badRequest("%s %.80q: offset after @: %v", ParamSub, v, err)
		}
	}
	return Subscription{Stream: backplane.Stream{Project: project, Collection: collection}, Since: since}, nil
}

// errNoToken is the refusal of a request without a token.
var errNoToken = &RequestError{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
	Message: "missing token: send Authorization: Bearer <token>, or ?" + ParamToken + "=<token>"}

// Refusal maps a failed token verification to the answer: 401, or 503 when
// the authentication backend failed (try again).
func Refusal(err error) *RequestError {
	if errors.Is(err, auth.ErrUnavailable) {
		return &RequestError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "the authentication backend is unavailable, try again"}
	}
	return &RequestError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: err.Error()}
}

// Authorize checks that claims grant every subscription of req: the first
// one they do not is a 403 naming it.
func Authorize(claims *auth.Claims, req *Request) error {
	for _, s := range req.Subs {
		if err := claims.CanRead(s.Stream.Project, s.Stream.Collection); err != nil {
			return &RequestError{Status: http.StatusForbidden, Code: CodeForbidden, Message: s.Stream.String() + ": " + err.Error()}
		}
	}
	return nil
}
