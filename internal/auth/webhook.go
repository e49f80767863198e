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
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Transports, the values of the webhook request's "transport" field.
const (
	TransportWS       = "ws"
	TransportSocketIO = "socketio"
	TransportSSE      = "sse"
)

type transportKey struct{}

// WithTransport returns a context naming the transport a credential arrived
// on; the webhook is told it as "transport". Every transport sets it on the
// context it verifies tokens with.
func WithTransport(ctx context.Context, transport string) context.Context {
	return context.WithValue(ctx, transportKey{}, transport)
}

func transportOf(ctx context.Context) string {
	s, _ := ctx.Value(transportKey{}).(string)
	return s
}

// ErrUnavailable is wrapped by a temporary authentication failure: the
// webhook did not answer within its timeout, answered a status other than
// 200, 401 and 403, or answered 200 with a malformed body. It is never a
// refusal: the client is told to try again later (close 1013).
var ErrUnavailable = errors.New("authentication temporarily unavailable")

// Reasons of the webhook, reported by Reason and counted in
// syncgate_auth_failures_total.
const (
	ReasonRefused     = "refused"     // the webhook answered 401 or 403
	ReasonUnavailable = "unavailable" // a temporary failure, see ErrUnavailable
)

// Outcomes of a webhook call, the `outcome` label of
// syncgate_auth_webhook_calls_total.
const (
	OutcomeOK        = "ok"        // 200 with valid claims
	OutcomeRefused   = "refused"   // 401 or 403, or 200 with an exp already past
	OutcomeStatus    = "status"    // any other status
	OutcomeMalformed = "malformed" // 200 whose body is not valid claims
	OutcomeTimeout   = "timeout"   // no answer within the timeout
	OutcomeError     = "error"     // the request failed (connection refused, reset, …)
	OutcomeBusy      = "busy"      // not sent: every slot stayed busy for the whole timeout
)

// Outcomes lists every outcome, so metrics can export them from the start.
var Outcomes = []string{OutcomeOK, OutcomeRefused, OutcomeStatus, OutcomeMalformed, OutcomeTimeout, OutcomeError, OutcomeBusy}

// UnavailableError is a temporary failure; errors.Is(err, ErrUnavailable)
// holds for it and Outcome says what happened.
type UnavailableError struct {
	Outcome string
	Err     error
}

func (e *UnavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.Err.Error() }

// Unwrap makes errors.Is(err, ErrUnavailable) true and exposes the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Close codes a transport ends a connection with when authentication fails;
// CloseCode and ExpiryCloseCode choose among them, so every transport maps
// errors the same way.
const (
	CloseUnauthorized  = 4001 // refused: bad, missing or refused credential
	CloseTokenExpired  = 4009 // exp reached and the credential was not renewed
	CloseTryAgainLater = 1013 // temporary failure: try again later
)

// CloseCode is the close code for a connection whose credential failed
// verification with err: 1013 for a temporary failure, else 4001.
func CloseCode(err error) int {
	if errors.Is(err, ErrUnavailable) {
		return CloseTryAgainLater
	}
	return CloseUnauthorized
}

// ExpiryCloseCode is the close code for a live connection whose claims
// could not be renewed at exp (see Claims.Renew): 1013 for a temporary
// failure, else 4009.
func ExpiryCloseCode(err error) int {
	if errors.Is(err, ErrUnavailable) {
		return CloseTryAgainLater
	}
	return CloseTokenExpired
}

// WebhookConfig configures the authentication webhook. A zero field means
// its documented default.
type WebhookConfig struct {
	// URL receives POST {"token","transport"}; empty disables the webhook.
	URL string
	// Key, when set, is sent as `Authorization: Bearer <Key>`.
	Key string
	// Timeout bounds one verification: waiting for a free slot plus the
	// call itself. Default 2s.
	Timeout time.Duration
	// CacheTTL bounds how long a 200 answer is reused for the same
	// credential (never past the answer's exp). Default 60s.
	CacheTTL time.Duration
	// MaxInFlight bounds the calls in flight at once; a verification that
	// finds no free slot within Timeout is a temporary failure. Default 32.
	MaxInFlight int
	// MaxCacheEntries bounds the answer cache; default 100,000.
	MaxCacheEntries int
	// HTTPClient makes the calls; default a client with its own keep-alive
	// pool sized for MaxInFlight (Verifier.Close releases it).
	HTTPClient *http.Client
	// Logger defaults to slog.Default(). The credential is never logged.
	Logger *slog.Logger
	// Metrics records every call; may be nil.
	Metrics WebhookMetrics
}

// WebhookMetrics records webhook calls; *metrics.Metrics implements it.
type WebhookMetrics interface {
	// WebhookCall records one call's outcome and how long it took.
	WebhookCall(outcome string, d time.Duration)
}

// Validate names the first field that cannot work.
func (c WebhookConfig) Validate() error {
	if c.URL == "" {
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("auth: webhook URL %q is not an http(s) URL", c.URL)
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("auth: webhook timeout %s is negative", c.Timeout)
	case c.CacheTTL < 0:
		return fmt.Errorf("auth: webhook cache TTL %s is negative", c.CacheTTL)
	case c.MaxInFlight < 0:
		return fmt.Errorf("auth: webhook MaxInFlight %d is negative", c.MaxInFlight)
	case c.MaxCacheEntries < 0:
		return fmt.Errorf("auth: webhook MaxCacheEntries %d is negative", c.MaxCacheEntries)
	}
	return nil
}

// webhook asks an HTTP backend about credentials that are not JWTs this node
// can verify. Concurrent verifications of one credential share one call
// (calls), answers are cached by the credential's SHA-256 (cache), and at
// most MaxInFlight calls run at once (slots). mu guards cache and calls and
// is never held across a call.
type webhook struct {
	cfg      WebhookConfig
	now      func() time.Time
	validate func(*tokenClaims) (*Claims, error)
	log      *slog.Logger
	slots    chan struct{}
	ownHTTP  bool
	failing  atomic.Bool // the last call failed; failures after the first log at debug

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached
	calls map[[sha256.Size]byte]*call
}

// cached is an answer without its credential.
type cached struct {
	claims *Claims
	until  time.Time
}

// call is one webhook request that every concurrent verification of the
// same credential waits for.
type call struct {
	done    chan struct{}
	claims  *Claims
	err     error
	waiters int // verifications that joined the call, guarded by webhook.mu
}

// credential is what a webhook answer was for, kept on the claims given to a
// connection (never in the cache) so Claims.Renew can ask again at exp.
type credential struct {
	hook      *webhook
	token     string
	transport string
}

func newWebhook(cfg WebhookConfig, now func() time.Time, validate func(*tokenClaims) (*Claims, error)) *webhook {
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 60 * time.Second
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 32
	}
	if cfg.MaxCacheEntries == 0 {
		cfg.MaxCacheEntries = 100_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &webhook{cfg: cfg, now: now, validate: validate, log: cfg.Logger,
		slots: make(chan struct{}, cfg.MaxInFlight),
		cache: make(map[[sha256.Size]byte]cached), calls: make(map[[sha256.Size]byte]*call)}
	if w.cfg.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.MaxInFlight
		w.cfg.HTTPClient = &http.Client{Transport: t}
		w.ownHTTP = true
	}
	return w
}

// close releases the idle keep-alive connections of the webhook's own client.
func (w *webhook) close() {
	if w.ownHTTP {
		w.cfg.HTTPClient.CloseIdleConnections()
	}
}

// check returns the claims for token: from the cache, from a call already in
// flight for the same token, or from a new call.
func (w *webhook) check(ctx context.Context, token, transport string) (*Claims, error) {
	key := sha256.Sum256([]byte(token))
	w.mu.Lock()
	if e, ok := w.cache[key]; ok {
		if w.now().Before(e.until) {
			w.mu.Unlock()
			return w.give(e.claims, token, transport), nil
		}
		delete(w.cache, key)
	}
	if c, ok := w.calls[key]; ok {
		c.waiters++
		w.mu.Unlock()
		select {
		case <-c.done:
			if c.err != nil {
				return nil, c.err
			}
			return w.give(c.claims, token, transport), nil
		case <-ctx.Done():
			return nil, &UnavailableError{OutcomeTimeout, ctx.Err()}
		}
	}
	c := &call{done: make(chan struct{})}
	w.calls[key] = c
	w.mu.Unlock()

	c.claims, c.err = w.ask(ctx, token, transport)

	w.mu.Lock()
	delete(w.calls, key)
	if c.err == nil {
		w.store(key, c.claims)
	}
	w.mu.Unlock()
	close(c.done)
	if c.err != nil {
		return nil, c.err
	}
	return w.give(c.claims, token, transport), nil
}

// give copies shared claims for one connection, with the credential that
// renews them.
func (w *webhook) give(c *Claims, token, transport string) *Claims {
	cl := *c
	cl.cred = &credential{hook: w, token: token, transport: transport}
	return &cl
}

// store caches c until its exp or CacheTTL, whichever is first. When the
// cache is full, expired entries go first, then arbitrary ones down to 90%,
// so a full cache costs one sweep per tenth of its size. w.mu held.
func (w *webhook) store(key [sha256.Size]byte, c *Claims) {
	now := w.now()
	until := now.Add(w.cfg.CacheTTL)
	if c.ExpiresAt.Before(until) {
		until = c.ExpiresAt
	}
	if len(w.cache) >= w.cfg.MaxCacheEntries {
		for k, e := range w.cache {
			if !now.Before(e.until) {
				delete(w.cache, k)
			}
		}
		for k := range w.cache {
			if len(w.cache) < w.cfg.MaxCacheEntries*9/10 {
				break
			}
			delete(w.cache, k)
		}
	}
	w.cache[key] = cached{claims: c, until: until}
}

// ask makes one call, within a free slot and Timeout. The call does not end
// when ctx is cancelled (other verifications may be waiting for it), only at
// its timeout.
func (w *webhook) ask(ctx context.Context, token, transport string) (*Claims, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Timeout)
	defer cancel()
	start := time.Now()
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	case <-ctx.Done():
		return nil, w.failed(OutcomeBusy, start, fmt.Errorf("all %d webhook calls stayed busy for %s", w.cfg.MaxInFlight, w.cfg.Timeout))
	}
	start = time.Now()
	body, err := json.Marshal(struct {
		Token     string `json:"token"`
		Transport string `json:"transport"`
	}{token, transport})
	if err != nil {
		return nil, w.failed(OutcomeError, start, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, w.failed(OutcomeError, start, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if w.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.Key)
	}
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, w.failed(OutcomeTimeout, start, fmt.Errorf("no answer within %s", w.cfg.Timeout))
		}
		return nil, w.failed(OutcomeError, start, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10+1))
	if err != nil {
		outcome := OutcomeError
		if errors.Is(err, context.DeadlineExceeded) {
			outcome = OutcomeTimeout
		}
		return nil, w.failed(outcome, start, fmt.Errorf("reading the answer: %w", err))
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		w.observe(OutcomeRefused, start)
		return nil, &TokenError{ReasonRefused, fmt.Errorf("authentication webhook answered %s", resp.Status)}
	default:
		return nil, w.failed(OutcomeStatus, start, fmt.Errorf("authentication webhook answered %s", resp.Status))
	}
	if len(answer) > 64<<10 {
		return nil, w.failed(OutcomeMalformed, start, errors.New("answer is over 64 KiB"))
	}
	var tc tokenClaims
	if err := json.Unmarshal(answer, &tc); err != nil {
		return nil, w.failed(OutcomeMalformed, start, fmt.Errorf("answer is not claims JSON: %w", err))
	}
	c, err := w.validate(&tc)
	if Reason(err) == ReasonExpired {
		// An exp already past is the backend's refusal, not a fault: the
		// credential has expired.
		w.observe(OutcomeRefused, start)
		msg := "authentication webhook answered claims that have expired"
		if exp, _ := tc.GetExpirationTime(); exp != nil {
			msg += " at " + exp.Time.UTC().Format(time.RFC3339)
		}
		return nil, &TokenError{ReasonExpired, errors.New(msg)}
	}
	if err != nil {
		// %v, not %w: a malformed answer is not a refusal (no ErrInvalidToken).
		return nil, w.failed(OutcomeMalformed, start, fmt.Errorf("answer's claims: %v", err))
	}
	w.observe(OutcomeOK, start)
	if w.failing.Swap(false) {
		w.log.Info("authentication webhook answers again")
	}
	return c, nil
}

func (w *webhook) observe(outcome string, start time.Time) {
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.WebhookCall(outcome, time.Since(start))
	}
}

// failed records a temporary failure and logs it: the first of a run at
// warn, the rest at debug, so an outage does not flood the log. The
// credential is not in err.
func (w *webhook) failed(outcome string, start time.Time, err error) error {
	w.observe(outcome, start)
	level := slog.LevelDebug
	if !w.failing.Swap(true) {
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, "authentication webhook failed; clients are told to try again (1013)", "outcome", outcome, "err", err)
	return &UnavailableError{outcome, err}
}

// Renew asks again for claims a webhook answer gave, when they reach exp.
// It returns the renewed claims, or an error: ErrUnavailable for a temporary
// failure (close 1013), else a refusal (close 4009; see ExpiryCloseCode).
// Claims from a JWT cannot be renewed: the client must send a fresh token.
// The renewed claims must grant what the old ones did, to the same user;
// when the grants changed the connection ends so the client reconnects
// under the new ones.
func (c *Claims) Renew(ctx context.Context) (*Claims, error) {
	if c.cred == nil {
		return nil, &TokenError{ReasonExpired, fmt.Errorf("token expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	n, err := c.cred.hook.check(ctx, c.cred.token, c.cred.transport)
	if err != nil {
		return nil, err
	}
	if !sameGrants(c, n) {
		return nil, &TokenError{ReasonClaims, errors.New("the renewed claims grant something else; reconnect")}
	}
	return n, nil
}

func sameGrants(a, b *Claims) bool {
	return a.Subject == b.Subject && slices.Equal(a.Projects, b.Projects) && slices.Equal(a.Roles, b.Roles) &&
		(a.Collections == nil) == (b.Collections == nil) && slices.Equal(a.Collections, b.Collections)
}

// RenewAtExpiry is what a live connection's timer runs when its claims
// reach exp; mu guards *claims and *timer. Claims a webhook answered are
// asked for again (Claims.Renew): renewed, they replace *claims, the timer
// is reset to their exp and the code is 0. Otherwise RenewAtExpiry returns
// the close code (ExpiryCloseCode: 4009, or 1013 for a temporary failure)
// and reason to end the connection with — or 0 when the client refreshed
// its token meanwhile, so the claims that expired are no longer its own.
func RenewAtExpiry(ctx context.Context, mu *sync.Mutex, claims **Claims, timer **time.Timer) (code int, reason string) {
	mu.Lock()
	old := *claims
	mu.Unlock()
	renewed, err := old.Renew(ctx)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case *claims != old || ctx.Err() != nil: // refreshed, or the connection is ending
		return 0, ""
	case err != nil:
		if errors.Is(err, ErrUnavailable) {
			return ExpiryCloseCode(err), "token expired and the authentication backend is unavailable, try again"
		}
		return ExpiryCloseCode(err), "token expired"
	}
	*claims = renewed
	(*timer).Reset(time.Until(renewed.ExpiresAt))
	return 0, ""
}
