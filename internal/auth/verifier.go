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
	if errors.Is(err, ErrUnavailable) {
		return ReasonUnavailable
	}
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

// Config configures a Verifier. At least one of Secret, JWKSURL and
// Webhook.URL is needed.
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
	// Webhook verifies the credentials that are not JWTs this node can
	// verify (every credential when neither Secret nor JWKSURL is set);
	// disabled when its URL is empty.
	Webhook WebhookConfig
}

// Validate reports a configuration that cannot verify anything.
func (c Config) Validate() error {
	if len(c.Secret) == 0 && c.JWKSURL == "" && c.Webhook.URL == "" {
		return errors.New("auth: neither a JWT secret, a JWKS URL nor a webhook URL is configured")
	}
	if err := c.Webhook.Validate(); err != nil {
		return err
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
	cfg       Config
	parser    *jwt.Parser
	validator *jwt.Validator // the parser's claims checks, for webhook answers
	jwks      *jwks
	hook      *webhook
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
	checks := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.Now),
	}
	v.parser = jwt.NewParser(append(checks, jwt.WithValidMethods(methods))...)
	v.validator = jwt.NewValidator(checks...)
	if cfg.Webhook.URL != "" {
		v.hook = newWebhook(cfg.Webhook, cfg.Now, v.webhookClaims)
	}
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

// Close releases the webhook's idle connections; the Verifier stays usable.
func (v *Verifier) Close() {
	if v.hook != nil {
		v.hook.close()
	}
}

// Verify checks a token and returns its claims. With a webhook configured,
// a token that is not a JWT this node can verify (not a JWT, not signed
// with a configured key) is asked about instead; ctx names the transport
// (WithTransport). A temporary failure wraps ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, &TokenError{ReasonMissing, errors.New("no token")}
	}
	if len(token) > 16<<10 {
		return nil, &TokenError{ReasonMalformed, fmt.Errorf("token is %d bytes, at most 16384", len(token))}
	}
	if v.hook != nil && len(v.cfg.Secret) == 0 && v.jwks == nil {
		return v.hook.check(ctx, token, transportOf(ctx))
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
		err = classify(err)
		if r := Reason(err); v.hook != nil && (r == ReasonMalformed || r == ReasonSignature || r == ReasonUnknownKey) {
			return v.hook.check(ctx, token, transportOf(ctx))
		}
		return nil, err
	}
	return claimsOf(&tc)
}

// webhookClaims checks a webhook answer as a JWT's claims are checked.
func (v *Verifier) webhookClaims(tc *tokenClaims) (*Claims, error) {
	if err := v.validator.Validate(tc); err != nil {
		return nil, classify(err)
	}
	return claimsOf(tc)
}

// claimsOf checks the claims every token needs and converts them.
func claimsOf(tc *tokenClaims) (*Claims, error) {
	if tc.Subject == "" {
		return nil, &TokenError{ReasonClaims, errors.New("claim sub is missing")}
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
