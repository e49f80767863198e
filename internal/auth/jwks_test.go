package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

// slowJWKS is a real JWKS endpoint on loopback whose answers the test holds:
// the first fetch is answered at once with the keys in first; every later
// fetch reports itself on started and then waits for release, and is
// answered with the keys in later.
type slowJWKS struct {
	srv     *httptest.Server
	fetches atomic.Int32
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

// answer lets the held fetches answer; it is idempotent.
func (s *slowJWKS) answer() { s.once.Do(func() { close(s.release) }) }

func startSlowJWKS(t *testing.T, first, later map[string]*rsa.PrivateKey) *slowJWKS {
	t.Helper()
	s := &slowJWKS{started: make(chan struct{}, 16), release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys := first
		if s.fetches.Add(1) > 1 {
			s.started <- struct{}{}
			select {
			case <-s.release:
			case <-r.Context().Done():
				return
			}
			keys = later
		}
		var set []map[string]string
		for kid, k := range keys {
			set = append(set, map[string]string{"kty": "RSA", "kid": kid, "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	return s
}

// TestJWKSFetchOutsideLock holds a JWKS fetch (started by a token with an
// unknown kid) and checks that a token with a known kid verifies while it
// hangs, that a second unknown kid joins that one fetch instead of starting
// another, that a waiter whose context ends gives up, and that the waiters
// get the keys once the fetch answers.
func TestJWKSFetchOutsideLock(t *testing.T) {
	defer goleak.VerifyNone(t)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	jw := startSlowJWKS(t, map[string]*rsa.PrivateKey{"k1": k1}, map[string]*rsa.PrivateKey{"k1": k1, "k2": k2})
	defer jw.srv.Close()
	defer jw.answer() // before Close, when the test fails early

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v, err := NewVerifier(Config{JWKSURL: jw.srv.URL, MinRefresh: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	future := time.Now().Add(time.Hour)
	known := sign(t, jwt.SigningMethodRS256, k1, "k1", claims(future))
	unknown := sign(t, jwt.SigningMethodRS256, k2, "k2", claims(future))
	if _, err := v.Verify(ctx, known); err != nil {
		t.Fatalf("first token: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute) // past MinRefresh: an unknown kid may fetch
	mu.Unlock()

	// Two tokens with the unknown kid: the first starts the fetch, which
	// hangs; the second joins it.
	results := make(chan error, 2)
	go func() { _, err := v.Verify(ctx, unknown); results <- err }()
	<-jw.started
	go func() { _, err := v.Verify(ctx, unknown); results <- err }()

	// A known kid verifies while the fetch hangs: it returns before the
	// test releases the server, and neither unknown-kid verification has
	// ended (on a cache that fetches under its lock, this call waits for
	// the fetch to time out and the first of them ends first).
	if _, err := v.Verify(ctx, known); err != nil {
		t.Fatalf("known kid while the JWKS hangs: %v", err)
	}
	select {
	case err := <-results:
		t.Fatalf("an unknown-kid verification ended (%v) before the known kid was served", err)
	default:
	}

	// A waiter bounded by its context gives up without the fetch ending.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := v.Verify(cctx, unknown); Reason(err) != ReasonUnknownKey || !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter with an ended context: %v, want unknown_key wrapping context.Canceled", err)
	}

	jw.answer()
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("unknown kid after the fetch answered: %v", err)
		}
	}
	if n := jw.fetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (the waiters share one)", n)
	}
	if _, err := v.Verify(ctx, unknown); err != nil {
		t.Fatalf("k2 once cached: %v", err)
	}
}
