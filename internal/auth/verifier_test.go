package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func claims(exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": "u1", "exp": exp.Unix(), "projects": []string{"p1"}, "roles": []string{"admin"}}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHS256(t *testing.T) {
	v, err := NewVerifier(Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, secret, "", claims(future)), ""},
		{"missing", "", ReasonMissing},
		{"garbage", "abc", ReasonMalformed},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), "", claims(future)), ReasonSignature},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, "", claims(time.Now().Add(-time.Minute))), ReasonExpired},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "u1"}), ReasonClaims},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"exp": future.Unix()}), ReasonClaims},
		{"HS512 not allowed", sign(t, jwt.SigningMethodHS512, secret, "", claims(future)), ReasonSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(future)), ReasonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token)
			if tt.reason == "" {
				if err != nil || c.Subject != "u1" || c.Projects[0] != "p1" || c.Roles[0] != "admin" || c.Collections != nil {
					t.Fatalf("valid token: %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || Reason(err) != tt.reason {
				t.Fatalf("err %v (reason %q), want reason %q", err, Reason(err), tt.reason)
			}
		})
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWKS(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var fetches atomic.Int32
	rotated := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		ecPub, _ := ecKey.PublicKey.Bytes() // 0x04 || X || Y
		keys := []map[string]string{
			{"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
			{"kty": "oct", "kid": "ignored"},
		}
		if rotated.Load() {
			keys = append(keys, map[string]string{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(ecPub[1:33]), "y": b64(ecPub[33:])})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	defer srv.Close()
	now := time.Now()
	clock := func() time.Time { return now }
	v, err := NewVerifier(Config{JWKSURL: srv.URL, MinRefresh: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	future := now.Add(time.Hour)
	ctx := context.Background()

	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(future))); err != nil {
		t.Fatalf("RS256: %v", err)
	}
	// Cached: a second token does not fetch again.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(future))); err != nil || fetches.Load() != 1 {
		t.Fatalf("second RS256: %v after %d fetches, want 1", err, fetches.Load())
	}
	// An unknown kid fetches at most once per MinRefresh.
	es := sign(t, jwt.SigningMethodES256, ecKey, "e1", claims(future))
	if _, err := v.Verify(ctx, es); Reason(err) != ReasonUnknownKey {
		t.Fatalf("unknown kid before rotation: %v", err)
	}
	rotated.Store(true)
	if _, err := v.Verify(ctx, es); Reason(err) != ReasonUnknownKey || fetches.Load() != 1 {
		t.Fatalf("within MinRefresh: %v after %d fetches, want no new fetch", err, fetches.Load())
	}
	now = now.Add(2 * time.Minute)
	if _, err := v.Verify(ctx, es); err != nil || fetches.Load() != 2 {
		t.Fatalf("ES256 after rotation: %v after %d fetches", err, fetches.Load())
	}
	// Public keys never verify HMAC tokens, and a key never serves the
	// other algorithm.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, "r1", claims(future))); err == nil {
		t.Fatal("HS256 accepted by a JWKS-only verifier")
	}
	rsWithEC := sign(t, jwt.SigningMethodRS256, rsaKey, "e1", claims(future))
	if _, err := v.Verify(ctx, rsWithEC); err == nil {
		t.Fatal("RS256 token verified against an EC key id")
	}
	// Stale keys refresh after JWKSRefresh; a failing JWKS keeps the cache.
	srv.Close()
	now = now.Add(10 * time.Minute)
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(now.Add(time.Hour)))); err != nil {
		t.Fatalf("cached key after JWKS outage: %v", err)
	}
}

func TestCanRead(t *testing.T) {
	tests := []struct {
		c          Claims
		project    string
		collection string
		ok         bool
	}{
		{Claims{Projects: []string{"p"}}, "p", "c", true},
		{Claims{Projects: []string{"p"}}, "p", "*", true},
		{Claims{Projects: []string{"p"}}, "q", "c", false},
		{Claims{Projects: []string{"*"}}, "q", "c", true},
		{Claims{Projects: []string{"p"}, Collections: []string{"c"}}, "p", "c", true},
		{Claims{Projects: []string{"p"}, Collections: []string{"c"}}, "p", "d", false},
		{Claims{Projects: []string{"p"}, Collections: []string{"c"}}, "p", "*", false},
		{Claims{Projects: []string{"p"}, Collections: []string{"*"}}, "p", "*", true},
		{Claims{Projects: []string{"p"}, Collections: []string{}}, "p", "c", false},
		{Claims{}, "p", "c", false},
	}
	for _, tt := range tests {
		err := tt.c.CanRead(tt.project, tt.collection)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("%+v CanRead(%s, %s) = %v, want ok=%v", tt.c, tt.project, tt.collection, err, tt.ok)
		}
	}
}

func TestKeys(t *testing.T) {
	ks := ParseKeys(" a1 ,, b2,")
	for key, want := range map[string]bool{"a1": true, "b2": true, "": false, "a": false, "a1 ": false, "c3": false} {
		if got := ks.Check(key); got != want {
			t.Errorf("Check(%q) = %v, want %v", key, got, want)
		}
	}
	if ParseKeys("").Check("") {
		t.Error("empty key set accepted the empty key")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Secret: []byte("short")}, {JWKSURL: "ftp://x"}} {
		if _, err := NewVerifier(c); err == nil {
			t.Errorf("NewVerifier(%+v) accepted", c)
		}
	}
}

// TestExpClaimForm refuses an exp that is not RFC 7519's NumericDate in
// seconds: milliseconds (a backend writing Date.now() + …) made a token
// "valid" past the year 10000, whose ready.expiresAt could not be encoded,
// and a string was accepted.
func TestExpClaimForm(t *testing.T) {
	v, err := NewVerifier(Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	withExp := func(exp any) string {
		return sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "u1", "exp": exp, "projects": []string{"p1"}})
	}
	tests := []struct {
		name     string
		exp      any
		contains string // "" means valid
	}{
		{"seconds", now.Add(time.Hour).Unix(), ""},
		{"fractional seconds", float64(now.Add(time.Hour).Unix()) + 0.5, ""},
		{"milliseconds", now.Add(time.Hour).Unix() * 1000, "exp is not in seconds"},
		{"microseconds", now.Add(time.Hour).UnixMicro(), "exp is not in seconds"},
		{"huge", 1e300, "exp is not in seconds"},
		{"string", strconv.FormatInt(now.Add(time.Hour).Unix(), 10), "JSON number"},
		{"string milliseconds", strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10), "JSON number"},
		{"null", nil, "JSON number"},
		{"object", map[string]int{"s": 1}, "JSON number"},
		{"bool", true, "JSON number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), withExp(tt.exp))
			if tt.contains == "" {
				if err != nil || c.ExpiresAt.Sub(now) < 59*time.Minute || c.ExpiresAt.Year() > 9999 {
					t.Fatalf("valid exp: %+v, %v", c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("exp %v accepted: expires %v", tt.exp, c.ExpiresAt)
			}
			if !errors.Is(err, ErrInvalidToken) || Reason(err) != ReasonClaims || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("err %v (reason %q), want reason claims containing %q", err, Reason(err), tt.contains)
			}
		})
	}
}

func TestParseExpiry(t *testing.T) {
	tests := []struct {
		raw  string
		want int64
		ok   bool
	}{
		{"1700000000", 1700000000, true},
		{" 1700000000.25 ", 1700000000, true},
		{"1e9", 1000000000, true},
		{"-5", 0, true},
		{"99999999999", 99999999999, true},
		{"100000000001", 0, false},
		{`"1700000000"`, 0, false},
		{"", 0, false},
		{"null", 0, false},
		{"1e999", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseExpiry(json.RawMessage(tt.raw))
		if (err == nil) != tt.ok || (tt.ok && got.Unix() != tt.want) {
			t.Errorf("ParseExpiry(%s) = %v, %v; want %d ok=%v", tt.raw, got.Unix(), err, tt.want, tt.ok)
		}
		if tt.raw == "100000000001" && !errors.Is(err, ErrExpNotSeconds) {
			t.Errorf("ParseExpiry(%s) error %v does not wrap ErrExpNotSeconds", tt.raw, err)
		}
	}
}
