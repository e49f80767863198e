package wstest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Webhook is an authentication webhook on loopback: it answers each
// credential as Grant or Answer set it (401 for any other), counts the calls
// per credential, and can hold every answer until released.
type Webhook struct {
	URL string
	srv *httptest.Server

	mu         sync.Mutex
	answers    map[string]WebhookAnswer
	calls      map[string]int
	transports []string
	held       chan struct{} // non-nil: calls wait until it is closed
}

// WebhookAnswer is what the webhook answers for one credential.
type WebhookAnswer struct {
	Status int            // default 200
	Claims map[string]any // the 200 body
}

// StartWebhook starts a webhook; it stops at test cleanup.
func StartWebhook(t testing.TB) *Webhook {
	t.Helper()
	w := &Webhook{answers: map[string]WebhookAnswer{}, calls: map[string]int{}}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	w.URL = w.srv.URL
	t.Cleanup(func() {
		w.Release()
		w.srv.Close()
	})
	return w
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	var req struct{ Token, Transport string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(rw, "bad request", http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.calls[req.Token]++
	w.transports = append(w.transports, req.Transport)
	held := w.held
	w.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
	}
	w.mu.Lock()
	a, ok := w.answers[req.Token]
	w.mu.Unlock()
	switch {
	case !ok:
		rw.WriteHeader(http.StatusUnauthorized)
	case a.Status != 0 && a.Status != http.StatusOK:
		rw.WriteHeader(a.Status)
	default:
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(a.Claims)
	}
}

// Grant makes the webhook answer 200 for token: user, the projects, exp ttl
// from now.
func (w *Webhook) Grant(token, user string, ttl time.Duration, projects ...string) {
	w.Answer(token, WebhookAnswer{Claims: map[string]any{"sub": user, "exp": time.Now().Add(ttl).Unix(), "projects": projects}})
}

// Answer sets the answer for token.
func (w *Webhook) Answer(token string, a WebhookAnswer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.answers[token] = a
}

// Hold makes every call wait until Release.
func (w *Webhook) Hold() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == nil {
		w.held = make(chan struct{})
	}
}

// Release answers the held calls and stops holding.
func (w *Webhook) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held != nil {
		close(w.held)
		w.held = nil
	}
}

// Calls is how often the webhook was asked about token.
func (w *Webhook) Calls(token string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[token]
}

// Transports lists the "transport" of every call so far.
func (w *Webhook) Transports() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.transports...)
}
