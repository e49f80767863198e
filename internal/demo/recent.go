package demo

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
)

// RecentLimit is the most events Recent returns: the page shows what was
// published shortly before it opened, not the whole history.
const RecentLimit = 100

// HistoryReader reads a stream's history; the backplane is one.
type HistoryReader interface {
	History(ctx context.Context, s backplane.Stream, since string, page backplane.Page) (backplane.History, error)
}

// TokenVerifier checks a client token; *auth.Verifier is one.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*auth.Claims, error)
}

// recentAnswer is the body of GET /demo/recent.
type recentAnswer struct {
	// Events are the newest events of the stream still in history (at most
	// RecentLimit, oldest first) that the token's user may see.
	Events []syncgate.Event `json:"events"`
	// Offset is the stream's head when Events were read: subscribing with
	// since=Offset continues after them with no gap and no duplicate.
	Offset string `json:"offset"`
	// Complete is false when older events of the stream were trimmed from
	// history (or more than RecentLimit remain), so Events is only its tail.
	Complete bool `json:"complete"`
}

// Recent returns the handler of GET /demo/recent?project=P&collection=C
// (C defaults to "*"), authorized like a subscription by the client token in
// `Authorization: Bearer …`. The demo page calls it before subscribing, to
// show what was published before it opened; it is mounted on development
// nodes only.
func Recent(h HistoryReader, v TokenVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			fail(w, http.StatusMethodNotAllowed, "bad_request", "method not allowed")
			return
		}
		token := ""
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			token = strings.TrimSpace(a[7:])
		}
		if token == "" {
			fail(w, http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer <client token>")
			return
		}
		claims, err := v.Verify(r.Context(), token)
		if err != nil {
			fail(w, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		}
		project, collection := r.URL.Query().Get("project"), r.URL.Query().Get("collection")
		if collection == "" {
			collection = syncgate.AllCollections
		}
		if err := syncgate.ValidateSubscription(project, collection); err != nil {
			fail(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if err := claims.CanRead(project, collection); err != nil {
			fail(w, http.StatusForbidden, "forbidden", err.Error())
			return
		}
		ans, err := recent(r.Context(), h, backplane.Stream{Project: project, Collection: collection}, claims)
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "internal", "history unavailable")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(ans)
	})
}

// recent reads s from its start: the head first, then every event after
// the head's epoch's origin, page by page, keeping the last RecentLimit
// the user may see. A trimmed stream has no replay from there (History
// says not recovered), and the answer is its head alone.
func recent(ctx context.Context, h HistoryReader, s backplane.Stream, claims *auth.Claims) (recentAnswer, error) {
	head, err := h.History(ctx, s, "", backplane.Page{})
	if err != nil {
		return recentAnswer{}, err
	}
	ans := recentAnswer{Events: []syncgate.Event{}, Offset: head.Head}
	off, err := backplane.ParseOffset(head.Head)
	if err != nil {
		return recentAnswer{}, err
	}
	if off.Hi == 0 && off.Lo == 0 {
		ans.Complete = true // an empty stream
		return ans, nil
	}
	since := backplane.Offset{Epoch: off.Epoch}.In(s).String()
	var events []syncgate.Event
	dropped := false
	for {
		page, err := h.History(ctx, s, since, backplane.Page{})
		if errors.Is(err, backplane.ErrBadOffset) || (err == nil && !page.Recovered) {
			return ans, nil
		}
		if err != nil {
			return recentAnswer{}, err
		}
		for _, ev := range page.Events {
			if ev.Audience.Allows(claims.Subject, claims.Roles) {
				events = append(events, ev)
			}
		}
		if n := len(events); n > RecentLimit {
			events, dropped = append(events[:0:0], events[n-RecentLimit:]...), true
		}
		if !page.More || len(page.Events) == 0 {
			ans.Offset = page.Head
			break
		}
		since = page.Events[len(page.Events)-1].Offset
	}
	ans.Complete = !dropped
	if events != nil {
		ans.Events = events
	}
	return ans, nil
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
