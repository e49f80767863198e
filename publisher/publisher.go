package publisher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate"
)

// Request limits of the gateway's publish endpoint (SPEC.md). Publish splits
// larger calls into several requests.
const (
	MaxRequestEvents = 1000
	MaxRequestBytes  = 1 << 20
)

// Config configures an HTTP Publisher. A zero field means its default.
type Config struct {
	// URL is the gateway's base URL, e.g. "https://sync.example.com"; the
	// client posts to URL + "/v1/publish". Required.
	URL string
	// Key is the publish key sent as "Authorization: Bearer <Key>". Required.
	Key string
	// HTTPClient sends the requests; default a client of its own with
	// keep-alive connections (up to 16 idle per host) and no overall
	// timeout: bound each call with its context.
	HTTPClient *http.Client
	// MaxRetries is how many times a request that certainly was not applied
	// (connection refused, 503) is tried again; default 4, negative none.
	MaxRetries int
	// RetryBase is the first backoff; each retry doubles it up to RetryMax,
	// and the wait is drawn uniformly from [d/2, d] (jitter). A 503's
	// Retry-After is honoured when it is longer, up to RetryMax.
	// Defaults 100ms and 2s.
	RetryBase, RetryMax time.Duration
	// UserAgent is sent with every request; default "syncgate-publisher-go".
	UserAgent string
}

// Validate reports a configuration that cannot publish.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("publisher: Config.URL is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("publisher: Config.URL %q is not an http(s) URL", c.URL)
	}
	if c.Key == "" {
		return errors.New("publisher: Config.Key (the publish key) is required")
	}
	if c.RetryBase < 0 {
		return fmt.Errorf("publisher: Config.RetryBase=%s: must not be negative", c.RetryBase)
	}
	if c.RetryMax < 0 {
		return fmt.Errorf("publisher: Config.RetryMax=%s: must not be negative", c.RetryMax)
	}
	return nil
}

// Transport carries a Publisher's requests: New's posts to a gateway, and
// publisher/redispub's calls the Redis Function. A Transport makes one
// attempt per Send; the Publisher retries.
type Transport interface {
	// Send publishes one request's worth of validated events (at most
	// MaxRequestEvents and MaxRequestBytes), all or nothing, and returns
	// their offsets in order. Its errors are *Error values; one that wraps
	// ErrUnavailable but not ErrUncertain says nothing was published, and
	// the Publisher tries it again (after its RetryAfter, when longer than
	// the backoff).
	Send(ctx context.Context, batch []Encoded) ([]string, error)
	// Close releases the Transport's connections.
	Close() error
}

// Encoded is a validated event and its JSON, as a Transport receives it.
// Neither may be modified.
type Encoded struct {
	Event *syncgate.Event
	JSON  []byte
}

// Retry says how a Publisher retries requests that certainly were not
// applied: MaxRetries times (default 4, negative none), with capped
// exponential backoff from Base to Max (defaults 100ms and 2s) and jitter.
type Retry struct {
	MaxRetries int
	Base, Max  time.Duration
}

// Validate names a field that cannot be used.
func (r Retry) Validate() error {
	if r.Base < 0 {
		return fmt.Errorf("publisher: Retry.Base=%s: must not be negative", r.Base)
	}
	if r.Max < 0 {
		return fmt.Errorf("publisher: Retry.Max=%s: must not be negative", r.Max)
	}
	return nil
}

// Publisher publishes events to syncgate over HTTP (New) or another
// Transport (NewWithTransport; publisher/redispub publishes straight into
// Redis). It is safe for concurrent use; keep one per process and Close it
// when done.
type Publisher struct {
	t      Transport
	retry  retryPolicy
	closed atomic.Bool
	now    func() time.Time
}

// New returns a Publisher that posts to a gateway's /v1/publish.
func New(cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := newHTTPTransport(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithTransport(t, Retry{MaxRetries: cfg.MaxRetries, Base: cfg.RetryBase, Max: cfg.RetryMax})
}

// NewWithTransport returns a Publisher sending through t, retrying as r
// says. The Publisher's Close closes t.
func NewWithTransport(t Transport, r Retry) (*Publisher, error) {
	if t == nil {
		return nil, errors.New("publisher: NewWithTransport needs a Transport")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &Publisher{t: t, retry: newRetry(r.MaxRetries, r.Base, r.Max), now: time.Now}, nil
}

// send sends one request through the Transport, retrying what certainly
// was not applied.
func (p *Publisher) send(ctx context.Context, batch []Encoded) ([]string, error) {
	return p.retry.do(ctx, func() ([]string, time.Duration, error) {
		offsets, err := p.t.Send(ctx, batch)
		if err == nil {
			return offsets, 0, nil
		}
		if ctx.Err() != nil || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUncertain) {
			return nil, -1, err
		}
		var pe *Error
		if errors.As(err, &pe) {
			return nil, pe.RetryAfter, err
		}
		return nil, 0, err
	})
}

// Publish validates events and publishes them in order, returning one offset
// per event (its offset in its collection stream).
//
// Events are checked here with the gateway's own rules (syncgate.Event.Validate
// and the size limit) before anything is sent; an invalid event fails the
// whole call with an *Error whose Message is what the gateway would have
// answered, and nothing is published. An event with a zero Timestamp gets
// the current time.
//
// One call is one request, all or nothing, unless it holds more than
// MaxRequestEvents events or MaxRequestBytes bytes: then it is sent as
// several requests in order, and on failure the returned offsets are those
// of the events already published (a prefix of events) and the *Error's
// Published field says how many.
func (p *Publisher) Publish(ctx context.Context, events ...syncgate.Event) ([]string, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if len(events) == 0 {
		return nil, nil
	}
	enc, err := encodeAll(events, p.now())
	if err != nil {
		return nil, err
	}
	offsets := make([]string, 0, len(events))
	for len(enc) > 0 {
		n := requestSize(enc)
		offs, err := p.send(ctx, enc[:n])
		if err != nil {
			return offsets, published(err, len(offsets))
		}
		offsets = append(offsets, offs...)
		enc = enc[n:]
	}
	return offsets, nil
}

// Close releases the Publisher's connections. Calls to Publish after Close
// fail with ErrClosed.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	return p.t.Close()
}

// Check validates ev exactly as Publish does (and as the gateway will):
// syncgate.Event.Validate, then the size limit counting the timestamp that
// Publish fills in when it is zero. It returns the event's encoded size.
func Check(ev syncgate.Event) (int, error) {
	e, err := encodeOne(&ev, time.Now())
	if err != nil {
		return 0, err
	}
	return len(e.JSON), nil
}

// encodeAll validates and encodes events, setting zero timestamps to now.
// The events slice is not modified.
func encodeAll(events []syncgate.Event, now time.Time) ([]Encoded, error) {
	enc := make([]Encoded, len(events))
	batch := len(events) > 1
	for i := range events {
		ev := events[i]
		e, err := encodeOne(&ev, now)
		if err != nil {
			return nil, invalid(err, i, batch)
		}
		enc[i] = e
	}
	return enc, nil
}

// encodeOne checks ev in the order the gateway does: Validate, default
// timestamp, then the encoded size.
func encodeOne(ev *syncgate.Event, now time.Time) (Encoded, error) {
	if err := ev.Validate(); err != nil {
		return Encoded{}, err
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = now.UTC()
	}
	raw, err := ev.Encode()
	if err != nil {
		return Encoded{}, err
	}
	return Encoded{Event: ev, JSON: raw}, nil
}

// batchOverhead is the size of `{"events":[` + `]}`.
const batchOverhead = len(`{"events":[]}`)

// requestSize returns how many of enc (at least one) fit in one request.
func requestSize(enc []Encoded) int {
	size := batchOverhead
	for i, e := range enc {
		size += len(e.JSON) + 1 // comma
		if i == MaxRequestEvents || (i > 0 && size > MaxRequestBytes) {
			return i
		}
	}
	return len(enc)
}

// published records in err how many events of the call went out before it.
func published(err error, n int) error {
	var pe *Error
	if errors.As(err, &pe) {
		pe.Published = n
	}
	return err
}

// bodyOf builds the request body: the bare event for one, a batch otherwise,
// so that the gateway's error messages match the client-side ones.
func bodyOf(batch []Encoded) []byte {
	if len(batch) == 1 {
		return batch[0].JSON
	}
	n := batchOverhead
	for _, e := range batch {
		n += len(e.JSON) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"events":[`...)
	for i, e := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.JSON...)
	}
	return append(b, `]}`...)
}
