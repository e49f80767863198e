package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is wrapped by every token verification failure.
var ErrInvalidToken = errors.New("invalid token")

// Reasons a token is refused, reported by TokenError.Reason and used as the
// `reason` label of syncgate_auth_failures_total.
const (
	ReasonMissing    = "missing"
	ReasonMalformed  = "malformed"
	ReasonSignature  = "signature"
	ReasonExpired    = "expired"
	ReasonUnknownKey = "unknown_key"
	ReasonClaims     = "claims"
)

// TokenError is a refused token with the reason.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string { return "invalid token: " + e.Err.Error() }

// Unwrap makes errors.Is(err, ErrInvalidToken) true and exposes the cause.
func (e *TokenError) Unwrap() []error { return []error{ErrInvalidToken, e.Err} }

// Reason returns the failure reason of err, or "" when it is not a token error.
func Reason(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

// Config configures a Verifier. At least one of Secret and JWKSURL is needed.
type Config struct {
	// Secret is the HS256 shared secret; empty disables HS256.
	Secret []byte
	// JWKSURL is fetched for RS256/ES256 keys; empty disables them.
	JWKSURL string
	// JWKSRefresh is how long fetched keys are fresh; default 5 minutes.
	JWKSRefresh time.Duration
	// MinRefresh is the least time between two fetches, so tokens with
	// unknown key ids cannot make the gateway hammer the JWKS; default 10s.
	MinRefresh time.Duration
	// HTTPClient fetches the JWKS; default a client with a 10s timeout.
	HTTPClient *http.Client
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// Validate reports a configuration that cannot verify anything.
func (c Config) Validate() error {
	if len(c.Secret) == 0 && c.JWKSURL == "" {
		return errors.New("auth: neither a JWT secret nor a JWKS URL is configured")
	}
	if len(c.Secret) > 0 && len(c.Secret) < 32 {
		return fmt.Errorf("auth: JWT secret is %d bytes, at least 32 are needed for HS256", len(c.Secret))
	}
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
		return fmt.Errorf("auth: JWKS URL %q is not http(s)", c.JWKSURL)
	}
	return nil
}

// Verifier checks client tokens.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	jwks   *jwks
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.JWKSRefresh <= 0 {
		cfg.JWKSRefresh = 5 * time.Minute
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = 10 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var methods []string
	if len(cfg.Secret) > 0 {
		methods = append(methods, "HS256")
	}
	v := &Verifier{cfg: cfg}
	if cfg.JWKSURL != "" {
		methods = append(methods, "RS256", "ES256")
		v.jwks = &jwks{url: cfg.JWKSURL, client: cfg.HTTPClient, fresh: cfg.JWKSRefresh, minGap: cfg.MinRefresh, now: cfg.Now}
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.Now),
	)
	return v, nil
}

type tokenClaims struct {
	jwt.RegisteredClaims
	// Exp shadows RegisteredClaims.ExpiresAt (a field at a shallower depth
	// wins in encoding/json) so that its JSON form is checked by
	// ParseExpiry: jwt.NumericDate also takes a string and any magnitude.
	Exp         json.RawMessage `json:"exp"`
	Projects    []string        `json:"projects"`
	Collections *[]string       `json:"collections"`
	Roles       []string        `json:"roles"`
}

// GetExpirationTime implements jwt.Claims with ParseExpiry's rules; the
// parser calls it after the signature is verified.
func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	if c.Exp == nil {
		return nil, nil // the parser then reports the required claim missing
	}
	t, err := ParseExpiry(c.Exp)
	if err != nil {
		return nil, err
	}
	return &jwt.NumericDate{Time: t}, nil
}

// Verify checks a token and returns its claims.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, &TokenError{ReasonMissing, errors.New("no token")}
	}
	if len(token) > 16<<10 {
		return nil, &TokenError{ReasonMalformed, fmt.Errorf("token is %d bytes, at most 16384", len(token))}
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case "HS256":
			return v.cfg.Secret, nil
		case "RS256", "ES256":
			kid, _ := t.Header["kid"].(string)
			return v.jwks.key(ctx, kid, t.Method.Alg())
		}
		return nil, fmt.Errorf("algorithm %q not allowed", t.Method.Alg())
	})
	if err != nil {
		return nil, classify(err)
	}
	exp, err := tc.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, &TokenError{ReasonClaims, fmt.Errorf("claim exp: %v", err)} // the parser checked it already
	}
	c := &Claims{
		Subject:   tc.Subject,
		ExpiresAt: exp.Time,
		Projects:  tc.Projects,
		Roles:     tc.Roles,
	}
	if err := c.Validate(); err != nil {
		return nil, &TokenError{ReasonClaims, err}
	}
	if tc.Collections != nil {
		c.Collections = *tc.Collections
		if c.Collections == nil {
			c.Collections = []string{}
		}
	}
	return c, nil
}

func classify(err error) error {
	reason := ReasonMalformed
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		reason = ReasonExpired
	case errors.Is(err, errUnknownKey):
		reason = ReasonUnknownKey
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = ReasonSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims), errors.Is(err, jwt.ErrTokenNotValidYet):
		reason = ReasonClaims
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = ReasonUnknownKey
	}
	return &TokenError{Reason: reason, Err: err}
}
