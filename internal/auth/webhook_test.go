package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// backend is a webhook on loopback that records what it is asked and
// answers with answer.
type backend struct {
	srv    *httptest.Server
	calls  atomic.Int32
	mu     sync.Mutex
	bodies []map[string]string
	auths  []string
	answer func(w http.ResponseWriter, r *http.Request, token string)
}

func startBackend(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, token string)) *backend {
	t.Helper()
	b := &backend{answer: answer}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		var body map[string]string
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		b.mu.Lock()
		b.bodies = append(b.bodies, body)
		b.auths = append(b.auths, r.Method+" "+r.Header.Get("Content-Type")+" "+r.Header.Get("Authorization"))
		b.mu.Unlock()
		b.answer(w, r, body["token"])
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// grant answers 200 with claims for user u1 valid until exp.
func grant(exp time.Time) func(w http.ResponseWriter, r *http.Request, token string) {
	return func(w http.ResponseWriter, r *http.Request, token string) {
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": "u1", "exp": exp.Unix(), "projects": []string{"p1"}, "roles": []string{"admin"}})
	}
}

type recorder struct {
	mu       sync.Mutex
	outcomes []string
}

func (r *recorder) WebhookCall(outcome string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, outcome)
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.outcomes) == 0 {
		return ""
	}
	return r.outcomes[len(r.outcomes)-1]
}

func newHookVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestWebhookAnswers(t *testing.T) {
	future := time.Now().Add(time.Hour).Unix()
	body := func(status int, s string) func(w http.ResponseWriter, r *http.Request, token string) {
		return func(w http.ResponseWriter, r *http.Request, token string) {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, s)
		}
	}
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter, r *http.Request, token string)
		outcome string
		reason  string // "" for granted
	}{
		{"granted", grant(time.Now().Add(time.Hour)), OutcomeOK, ""},
		{"401", body(401, `{"error":"unknown key"}`), OutcomeRefused, ReasonRefused},
		{"403", body(403, ``), OutcomeRefused, ReasonRefused},
		{"500", body(500, `oops`), OutcomeStatus, ReasonUnavailable},
		{"404", body(404, ``), OutcomeStatus, ReasonUnavailable},
		{"not JSON", body(200, `<html>`), OutcomeMalformed, ReasonUnavailable},
		{"projects not a list", body(200, fmt.Sprintf(`{"sub":"u1","exp":%d,"projects":"p1"}`, future)), OutcomeMalformed, ReasonUnavailable},
		{"no sub", body(200, fmt.Sprintf(`{"exp":%d,"projects":["p1"]}`, future)), OutcomeMalformed, ReasonUnavailable},
		{"no exp", body(200, `{"sub":"u1","projects":["p1"]}`), OutcomeMalformed, ReasonUnavailable},
		{"over 64 KiB", body(200, `{"sub":"u1","x":"`+strings.Repeat("a", 64<<10)+`"}`), OutcomeMalformed, ReasonUnavailable},
		{"exp already past", body(200, fmt.Sprintf(`{"sub":"u1","exp":%d,"projects":["p1"]}`, time.Now().Add(-time.Minute).Unix())), OutcomeRefused, ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBackend(t, tt.answer)
			rec := &recorder{}
			v := newHookVerifier(t, Config{Webhook: WebhookConfig{URL: b.srv.URL, Key: "hook-key", Metrics: rec, Logger: slog.New(slog.DiscardHandler)}})
			c, err := v.Verify(WithTransport(context.Background(), TransportSocketIO), "api-key-1")
			if got := rec.last(); got != tt.outcome {
				t.Errorf("outcome %q, want %q", got, tt.outcome)
			}
			b.mu.Lock()
			if len(b.bodies) != 1 || b.bodies[0]["token"] != "api-key-1" || b.bodies[0]["transport"] != "socketio" ||
				b.auths[0] != "POST application/json Bearer hook-key" {
				t.Errorf("request %v %v", b.bodies, b.auths)
			}
			b.mu.Unlock()
			if tt.reason == "" {
				if err != nil || c.Subject != "u1" || c.Projects[0] != "p1" || c.Roles[0] != "admin" || c.Collections != nil {
					t.Fatalf("granted: %+v, %v", c, err)
				}
				return
			}
			if Reason(err) != tt.reason {
				t.Fatalf("err %v: reason %q, want %q", err, Reason(err), tt.reason)
			}
			temporary := tt.reason == ReasonUnavailable
			if errors.Is(err, ErrUnavailable) != temporary || errors.Is(err, ErrInvalidToken) == temporary {
				t.Fatalf("err %v: temporary=%v, want %v", err, errors.Is(err, ErrUnavailable), temporary)
			}
			want := CloseUnauthorized
			if temporary {
				want = CloseTryAgainLater
			}
			if CloseCode(err) != want {
				t.Fatalf("CloseCode(%v) = %d, want %d", err, CloseCode(err), want)
			}
		})
	}
}

func TestWebhookTimeoutAndUnreachable(t *testing.T) {
	release := make(chan struct{})
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request, token string) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	rec := &recorder{}
	v := newHookVerifier(t, Config{Webhook: WebhookConfig{URL: slow.srv.URL, Timeout: 50 * time.Millisecond, Metrics: rec, Logger: slog.New(slog.DiscardHandler)}})
	if _, err := v.Verify(context.Background(), "k"); !errors.Is(err, ErrUnavailable) || rec.last() != OutcomeTimeout {
		t.Fatalf("slow webhook: %v, outcome %q", err, rec.last())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	v = newHookVerifier(t, Config{Webhook: WebhookConfig{URL: "http://" + addr + "/auth", Metrics: rec, Logger: slog.New(slog.DiscardHandler)}})
	if _, err := v.Verify(context.Background(), "k"); !errors.Is(err, ErrUnavailable) || rec.last() != OutcomeError {
		t.Fatalf("unreachable webhook: %v, outcome %q", err, rec.last())
	}
}

func TestWebhookCache(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	exp := now.Add(10 * time.Minute)
	refuse := atomic.Bool{}
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request, token string) {
		if refuse.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		grant(exp)(w, r, token)
	})
	v := newHookVerifier(t, Config{Now: clock, Webhook: WebhookConfig{URL: b.srv.URL, CacheTTL: time.Minute, Logger: slog.New(slog.DiscardHandler)}})
	ctx := context.Background()
	verify := func(token string, wantCalls int32) *Claims {
		t.Helper()
		c, err := v.Verify(ctx, token)
		if err != nil {
			t.Fatalf("%s: %v", token, err)
		}
		if got := b.calls.Load(); got != wantCalls {
			t.Fatalf("%s: %d webhook calls, want %d", token, got, wantCalls)
		}
		return c
	}
	verify("key-a", 1)
	verify("key-a", 1) // cached
	verify("key-b", 2) // another credential
	now = now.Add(59 * time.Second)
	verify("key-a", 2)
	now = now.Add(2 * time.Second) // past CacheTTL
	verify("key-a", 3)

	// The cache holds hashes and claims, never a credential.
	v.hook.mu.Lock()
	if _, ok := v.hook.cache[sha256.Sum256([]byte("key-a"))]; !ok {
		t.Error("key-a is not cached under its SHA-256")
	}
	for _, e := range v.hook.cache {
		if e.claims.cred != nil {
			t.Error("a cached answer keeps its credential")
		}
	}
	dump := fmt.Sprintf("%#v", v.hook.cache)
	v.hook.mu.Unlock()
	if strings.Contains(dump, "key-a") || strings.Contains(dump, "key-b") {
		t.Errorf("cache holds a credential: %s", dump)
	}

	// An exp sooner than CacheTTL ends the caching at exp.
	exp = now.Add(30 * time.Second)
	verify("key-c", 4)
	now = now.Add(31 * time.Second)
	refuse.Store(true)
	if _, err := v.Verify(ctx, "key-c"); Reason(err) != ReasonRefused || b.calls.Load() != 5 {
		t.Fatalf("after exp: %v with %d calls, want a refusing call", err, b.calls.Load())
	}
	// Refusals are not cached: a key the backend just created works at once.
	refuse.Store(false)
	exp = now.Add(time.Hour)
	verify("key-c", 6)
}

// TestWebhookCacheBound fills a small cache and checks it never grows past
// its bound.
func TestWebhookCacheBound(t *testing.T) {
	b := startBackend(t, grant(time.Now().Add(time.Hour)))
	v := newHookVerifier(t, Config{Webhook: WebhookConfig{URL: b.srv.URL, MaxCacheEntries: 10, Logger: slog.New(slog.DiscardHandler)}})
	for i := range 50 {
		if _, err := v.Verify(context.Background(), fmt.Sprintf("key-%d", i)); err != nil {
			t.Fatal(err)
		}
		v.hook.mu.Lock()
		n := len(v.hook.cache)
		v.hook.mu.Unlock()
		if n > 10 {
			t.Fatalf("cache has %d entries, bound 10", n)
		}
	}
	// The newest answer is always cached.
	if _, err := v.Verify(context.Background(), "key-49"); err != nil || b.calls.Load() != 50 {
		t.Fatalf("newest key not cached: %v, %d calls", err, b.calls.Load())
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWebhookBurst: a thousand verifications of one credential at once make
// one call, which every one of them waits for.
func TestWebhookBurst(t *testing.T) {
	const n = 1000
	release := make(chan struct{})
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request, token string) {
		<-release
		grant(time.Now().Add(time.Hour))(w, r, token)
	})
	v := newHookVerifier(t, Config{Webhook: WebhookConfig{URL: b.srv.URL, Timeout: time.Minute, Logger: slog.New(slog.DiscardHandler)}})
	key := sha256.Sum256([]byte("tab-key"))
	var wg sync.WaitGroup
	var granted atomic.Int32
	for range n {
		wg.Go(func() {
			if c, err := v.Verify(context.Background(), "tab-key"); err == nil && c.Subject == "u1" {
				granted.Add(1)
			}
		})
	}
	eventually(t, "every verification to join the one call", func() bool {
		v.hook.mu.Lock()
		defer v.hook.mu.Unlock()
		c := v.hook.calls[sha256.Sum256([]byte("tab-key"))]
		return c != nil && c.waiters == n-1
	})
	close(release)
	wg.Wait()
	if granted.Load() != n || b.calls.Load() != 1 {
		t.Fatalf("%d of %d granted with %d webhook calls, want all with 1", granted.Load(), n, b.calls.Load())
	}
	v.hook.mu.Lock()
	defer v.hook.mu.Unlock()
	if _, ok := v.hook.cache[key]; !ok || len(v.hook.calls) != 0 {
		t.Fatalf("after the burst: cached %v, %d calls left", ok, len(v.hook.calls))
	}
}

// TestWebhookInFlightBound: distinct credentials at once never have more
// than MaxInFlight calls in flight; the rest wait for a slot and succeed.
func TestWebhookInFlightBound(t *testing.T) {
	const limit, n = 3, 12
	var inFlight, peak atomic.Int32
	proceed := make(chan struct{})
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request, token string) {
		cur := inFlight.Add(1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		<-proceed
		inFlight.Add(-1)
		grant(time.Now().Add(time.Hour))(w, r, token)
	})
	v := newHookVerifier(t, Config{Webhook: WebhookConfig{URL: b.srv.URL, MaxInFlight: limit, Timeout: time.Minute, Logger: slog.New(slog.DiscardHandler)}})
	var wg sync.WaitGroup
	var granted atomic.Int32
	for i := range n {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), fmt.Sprintf("key-%d", i)); err == nil {
				granted.Add(1)
			}
		})
	}
	eventually(t, "every credential asked, the slots full", func() bool {
		v.hook.mu.Lock()
		defer v.hook.mu.Unlock()
		return len(v.hook.calls) == n && inFlight.Load() == limit
	})
	for range n {
		proceed <- struct{}{} // one call answers; a waiting one takes its slot
	}
	wg.Wait()
	if granted.Load() != n || peak.Load() != limit {
		t.Fatalf("%d of %d granted, peak %d in flight, want all and %d", granted.Load(), n, peak.Load(), limit)
	}
}

// TestWebhookBusy: with every slot taken for the whole timeout a
// verification fails as temporary without calling.
func TestWebhookBusy(t *testing.T) {
	b := startBackend(t, grant(time.Now().Add(time.Hour)))
	rec := &recorder{}
	v := newHookVerifier(t, Config{Webhook: WebhookConfig{URL: b.srv.URL, MaxInFlight: 2, Timeout: 20 * time.Millisecond, Metrics: rec, Logger: slog.New(slog.DiscardHandler)}})
	v.hook.slots <- struct{}{}
	v.hook.slots <- struct{}{}
	_, err := v.Verify(context.Background(), "k")
	if !errors.Is(err, ErrUnavailable) || rec.last() != OutcomeBusy || b.calls.Load() != 0 {
		t.Fatalf("busy: %v, outcome %q, %d calls", err, rec.last(), b.calls.Load())
	}
	<-v.hook.slots
	if _, err := v.Verify(context.Background(), "k"); err != nil || rec.last() != OutcomeOK {
		t.Fatalf("with a free slot: %v, outcome %q", err, rec.last())
	}
}

// TestWebhookNeverLogsCredential runs every failure mode with debug logging
// and looks for the credential in the log.
func TestWebhookNeverLogsCredential(t *testing.T) {
	const cred = "sk_live_SECRET_credential_42"
	var mode atomic.Int32
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request, token string) {
		switch mode.Load() {
		case 0:
			w.WriteHeader(500)
			_, _ = io.WriteString(w, token) // a backend that echoes it
		case 1:
			_, _ = io.WriteString(w, `{"sub":"`+token+`","exp":"soon"}`)
		case 2:
			<-r.Context().Done()
		case 3:
			w.WriteHeader(401)
		}
	})
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	v := newHookVerifier(t, Config{Webhook: WebhookConfig{URL: b.srv.URL, Timeout: 50 * time.Millisecond, Logger: log}})
	for m := range int32(4) {
		mode.Store(m)
		if _, err := v.Verify(context.Background(), cred); err == nil {
			t.Fatalf("mode %d granted", m)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "authentication webhook failed") {
		t.Fatalf("failures not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), cred) {
		t.Fatalf("credential in the log: %s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestVerifyFallsBackToWebhook: with a JWT secret and a webhook, JWTs this
// node can verify never reach the webhook; everything else does.
func TestVerifyFallsBackToWebhook(t *testing.T) {
	b := startBackend(t, grant(time.Now().Add(time.Hour)))
	v := newHookVerifier(t, Config{Secret: secret, Webhook: WebhookConfig{URL: b.srv.URL, Logger: slog.New(slog.DiscardHandler)}})
	future := time.Now().Add(time.Hour)
	tests := []struct {
		name    string
		token   string
		webhook bool
		ok      bool
	}{
		{"own JWT", sign(t, jwt.SigningMethodHS256, secret, "", claims(future)), false, true},
		{"own JWT expired", sign(t, jwt.SigningMethodHS256, secret, "", claims(time.Now().Add(-time.Minute))), false, false},
		{"own JWT without sub", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"exp": future.Unix()}), false, false},
		{"missing", "", false, false},
		{"another issuer's JWT", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), "", claims(future)), true, true},
		{"RS256 without a JWKS", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln", true, true},
		{"opaque key", "sk_live_123", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.calls.Load()
			_, err := v.Verify(context.Background(), tt.token)
			if (b.calls.Load() > before) != tt.webhook || (err == nil) != tt.ok {
				t.Fatalf("webhook called %v (want %v), err %v (want ok=%v)", b.calls.Load() > before, tt.webhook, err, tt.ok)
			}
		})
	}
}

func TestRenew(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	var answer atomic.Value // func(w, r, token)
	answer.Store(grant(now.Add(time.Minute)))
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request, token string) {
		answer.Load().(func(http.ResponseWriter, *http.Request, string))(w, r, token)
	})
	v := newHookVerifier(t, Config{Secret: secret, Now: clock, Webhook: WebhookConfig{URL: b.srv.URL, Logger: slog.New(slog.DiscardHandler)}})
	ctx := WithTransport(context.Background(), TransportWS)
	old, err := v.Verify(ctx, "key")
	if err != nil {
		t.Fatal(err)
	}
	jwtClaims, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, "", claims(now.Add(time.Minute))))
	if err != nil {
		t.Fatal(err)
	}
	status := func(code int) func(http.ResponseWriter, *http.Request, string) {
		return func(w http.ResponseWriter, r *http.Request, token string) { w.WriteHeader(code) }
	}
	otherGrants := func(w http.ResponseWriter, r *http.Request, token string) {
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": "u1", "exp": now.Add(time.Hour).Unix(), "projects": []string{"p1", "p2"}, "roles": []string{"admin"}})
	}
	now = now.Add(time.Minute) // exp: the cached answer is over
	tests := []struct {
		name   string
		claims *Claims
		answer func(http.ResponseWriter, *http.Request, string)
		code   int // 0: renewed
	}{
		{"granted again", old, grant(now.Add(time.Hour)), 0},
		{"refused", old, status(401), CloseTokenExpired},
		{"webhook down", old, status(502), CloseTryAgainLater},
		{"grants changed", old, otherGrants, CloseTokenExpired},
		{"a JWT is not renewed", jwtClaims, grant(now.Add(time.Hour)), CloseTokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v.hook.mu.Lock()
			clear(v.hook.cache)
			v.hook.mu.Unlock()
			answer.Store(tt.answer)
			before := b.calls.Load()
			n, err := tt.claims.Renew(context.Background())
			if tt.code == 0 {
				if err != nil || !n.ExpiresAt.Equal(now.Add(time.Hour).Truncate(time.Second)) || n.Subject != "u1" || n.cred == nil {
					t.Fatalf("renewed %+v, %v", n, err)
				}
				b.mu.Lock()
				last := b.bodies[len(b.bodies)-1]
				b.mu.Unlock()
				if last["token"] != "key" || last["transport"] != "ws" {
					t.Fatalf("renewal asked with %v", last)
				}
				return
			}
			if err == nil || ExpiryCloseCode(err) != tt.code {
				t.Fatalf("err %v: close %d, want %d", err, ExpiryCloseCode(err), tt.code)
			}
			if tt.claims == jwtClaims && b.calls.Load() != before {
				t.Fatal("renewing JWT claims called the webhook")
			}
		})
	}
}

func TestWebhookConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // "" for valid
	}{
		{Config{Webhook: WebhookConfig{URL: "http://127.0.0.1:9/auth"}}, ""},
		{Config{Webhook: WebhookConfig{URL: "ftp://x/auth"}}, `"ftp://x/auth"`},
		{Config{Webhook: WebhookConfig{URL: "https://"}}, `"https://"`},
		{Config{Webhook: WebhookConfig{URL: "http://x", Timeout: -time.Second}}, "timeout -1s"},
		{Config{Webhook: WebhookConfig{URL: "http://x", CacheTTL: -time.Second}}, "TTL -1s"},
		{Config{Webhook: WebhookConfig{URL: "http://x", MaxInFlight: -1}}, "MaxInFlight -1"},
		{Config{}, "neither"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg.Webhook, err, tt.want)
		}
	}
}
