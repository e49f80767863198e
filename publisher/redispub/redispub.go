// Package redispub publishes syncgate events straight into Redis, through
// the `syncgate_publish` Redis Function the gateways install
// (docs/redis.md): events reach every gateway node and their history
// exactly as if posted to a gateway, with one hop less and no publish key
// (access to Redis is the authority).
//
// It returns a *publisher.Publisher, so the helpers, the Batcher and the
// errors are those of the publisher package; only the constructor differs
// from HTTP publishing:
//
//	p, err := redispub.New(rdb, redispub.Config{})             // was publisher.NewRedis(rdb, publisher.RedisConfig{})
//	p, err := redispub.Open("redis://localhost:6379", redispub.Config{})
//
// It lives beside package publisher, not in it, so a program that publishes
// over HTTP does not link go-redis. The Publisher is safe for concurrent use.
package redispub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/redisfn"
	"github.com/syncgate/syncgate/publisher"
)

// Config configures a Redis Publisher. A zero field means its default.
type Config struct {
	// MaxRetries, RetryBase and RetryMax: as in publisher.Config (defaults
	// 4, 100ms, 2s; MaxRetries negative: none). Only failures where the call
	// certainly did not run are retried: no connection could be made, or
	// Redis refused it (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MOVED, …).
	MaxRetries          int
	RetryBase, RetryMax time.Duration
	// HistorySize and HistoryTTL are used only when the gateway's Redis
	// Function library is missing (no gateway has started against this
	// Redis yet, or it restarted empty) and the Publisher installs it; a
	// library it installs is marked as a publisher's, and gateways replace
	// it with their configured limits at their next probe (a second or
	// two), so a running gateway's settings win. Defaults 1000 and 24h; a
	// negative HistorySize keeps no history, as the gateway's does.
	HistorySize int
	HistoryTTL  time.Duration
}

// Validate names the first field that cannot be used, and its value.
func (c Config) Validate() error {
	if c.RetryBase < 0 {
		return fmt.Errorf("redispub: Config.RetryBase=%s: must not be negative", c.RetryBase)
	}
	if c.RetryMax < 0 {
		return fmt.Errorf("redispub: Config.RetryMax=%s: must not be negative", c.RetryMax)
	}
	if err := c.limits().Validate(); err != nil {
		return fmt.Errorf("redispub: Config.%w", err)
	}
	return nil
}

func (c Config) limits() redisfn.Limits {
	return redisfn.Limits{HistorySize: c.HistorySize, HistoryTTL: c.HistoryTTL}
}

// New returns a Publisher that calls the Redis Function on rdb, a
// *redis.Client or, for Redis Cluster, a *redis.ClusterClient. Configure it
// with MaxRetries: -1: go-redis otherwise resends a command whose connection
// broke after it was written, which can publish an event twice. The
// Publisher does not close rdb.
//
// On a single Redis each request is one atomic call. On Redis Cluster the
// events of one project are atomic, but a request spanning several projects
// is one call per project, in order; if one fails, earlier projects' events
// were published.
func New(rdb redis.UniversalClient, cfg Config) (*publisher.Publisher, error) {
	if rdb == nil {
		return nil, errors.New("redispub: New needs a Redis client")
	}
	return newPublisher(rdb, false, cfg)
}

// Open returns a Publisher on the Redis that url names, in the forms the
// gateway's SYNCGATE_REDIS_URL takes (redis://, rediss://,
// redis+cluster://host1:port,host2:port, or several comma-separated hosts),
// with a client of its own that never resends a command and honours the
// caller's deadlines. The Publisher's Close closes it.
func Open(url string, cfg Config) (*publisher.Publisher, error) {
	t, err := redisfn.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redispub: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newPublisher(t.CommandClient(), true, cfg)
}

func newPublisher(rdb redis.UniversalClient, own bool, cfg Config) (*publisher.Publisher, error) {
	if err := cfg.Validate(); err != nil {
		if own {
			_ = rdb.Close()
		}
		return nil, err
	}
	t := &transport{rdb: rdb, own: own, load: redisfn.PublisherLoader(rdb, cfg.limits())}
	return publisher.NewWithTransport(t, publisher.Retry{MaxRetries: cfg.MaxRetries, Base: cfg.RetryBase, Max: cfg.RetryMax})
}

// transport implements publisher.Transport with one redisfn.Publish call.
type transport struct {
	rdb  redis.UniversalClient
	own  bool // close rdb on Close
	load redisfn.Loader
}

func (t *transport) Close() error {
	if t.own {
		return t.rdb.Close()
	}
	return nil
}

func (t *transport) Send(ctx context.Context, batch []publisher.Encoded) ([]string, error) {
	evs := make([]redisfn.Encoded, len(batch))
	for i, e := range batch {
		evs[i] = redisfn.Encoded{Project: e.Event.Project, Collection: e.Event.Collection, JSON: e.JSON}
	}
	offsets, err := redisfn.Publish(ctx, t.rdb, evs, nil, t.load)
	if err != nil {
		return nil, toError(ctx, err)
	}
	return offsets, nil
}

// toError turns a redisfn error into the publisher's: a refused event is
// bad_request; a call that surely did not run is unavailable (and retried);
// one that may have run is unavailable and uncertain (never retried).
func toError(ctx context.Context, err error) *publisher.Error {
	msg := err.Error()
	switch {
	case errors.Is(err, syncgate.ErrInvalidEvent):
		return publisher.NewError(publisher.CodeBadRequest, msg, err)
	case errors.Is(err, redisfn.ErrNotSent):
		return publisher.NewError(publisher.CodeUnavailable, msg, errors.Join(publisher.ErrUnavailable, err))
	case errors.Is(err, redisfn.ErrMayHaveRun), ctx.Err() != nil:
		return publisher.NewError(publisher.CodeUnavailable,
			"the call may have reached Redis but no answer arrived; the events may or may not be published: "+msg,
			errors.Join(publisher.ErrUnavailable, publisher.ErrUncertain, err, ctx.Err()))
	}
	return publisher.NewError(publisher.CodeInternal, msg, err)
}
