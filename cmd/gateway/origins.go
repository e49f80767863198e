package main

import (
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
)

// maxLoggedOrigins bounds the set of refused origins remembered for
// logging, so a peer inventing origins cannot grow it without limit.
const maxLoggedOrigins = 1024

// originLog logs each browser origin that SYNCGATE_ALLOWED_ORIGINS refuses,
// once per origin, with the patterns it was checked against. The WebSocket
// library refuses such an upgrade with a bare 403 and nothing in the log,
// which leaves a developer whose page runs on localhost:5173 guessing.
type originLog struct {
	patterns []string
	log      *slog.Logger

	mu     sync.Mutex
	seen   map[string]struct{}
	capped bool // maxLoggedOrigins reached and said so
}

func newOriginLog(patterns []string, log *slog.Logger) *originLog {
	return &originLog{patterns: patterns, log: log, seen: make(map[string]struct{})}
}

// wrap checks the Origin of every WebSocket upgrade (/v1/ws, /socket.io/)
// before next, which refuses it on its own.
func (o *originLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
			!originAllowed(origin, r.Host, o.patterns) {
			o.refused(origin, r)
		}
		next.ServeHTTP(w, r)
	})
}

func (o *originLog) refused(origin string, r *http.Request) {
	o.mu.Lock()
	_, dup := o.seen[origin]
	full := len(o.seen) >= maxLoggedOrigins
	first := full && !o.capped
	if !dup && !full {
		o.seen[origin] = struct{}{}
	}
	if first {
		o.capped = true
	}
	o.mu.Unlock()
	switch {
	case dup:
	case first:
		o.log.Warn("more browser origins refused; no longer logging new ones", "logged", maxLoggedOrigins)
	case !full:
		allowed := "same origin only (SYNCGATE_ALLOWED_ORIGINS is empty)"
		if len(o.patterns) > 0 {
			allowed = strings.Join(o.patterns, ",")
		}
		o.log.Warn("browser origin refused by SYNCGATE_ALLOWED_ORIGINS (logged once per origin)",
			"origin", origin, "host", r.Host, "path", r.URL.Path, "allowed", allowed,
			"hint", "add the origin's host with its port, e.g. SYNCGATE_ALLOWED_ORIGINS=localhost:5173")
	}
}

// originAllowed mirrors the check of github.com/coder/websocket's Accept
// (v1.8): same host as the request, or a host pattern (path.Match, case
// insensitive; with "://" the pattern matches scheme://host).
func originAllowed(origin, host string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, u.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}
