package publisher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

// RedisConfig configures a Publisher that writes straight into Redis. A
// zero field means its default.
type RedisConfig struct {
	// MaxRetries, RetryBase and RetryMax: as in Config. Only failures where
	// the call certainly did not run are retried: no connection could be
	// made, or Redis refused it (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, …).
	MaxRetries          int
	RetryBase, RetryMax time.Duration
	// HistorySize and HistoryTTL are used only when the gateway's Redis
	// Function library is missing (no gateway has started against this
	// Redis yet, or it restarted empty) and the Publisher installs it; a
	// library it installs is marked as a publisher's, and gateways replace
	// it with their configured limits at their next probe (a second or
	// two), so a running gateway's settings win. Defaults 1000 and 24h.
	HistorySize int
	HistoryTTL  time.Duration
}

// NewRedis returns a Publisher that calls the `syncgate_publish` Redis
// Function that gateways install (docs/redis.md), so events reach every
// gateway node and their history exactly as if posted to a gateway, with
// one hop less and no publish key: access to Redis is the authority.
//
// rdb may be a *redis.Client or, for Redis Cluster, a *redis.ClusterClient.
// Configure it with MaxRetries: -1: go-redis otherwise resends a command
// whose connection broke after it was written, which can publish an event
// twice. The Publisher does not close rdb.
//
// On a single Redis each request is one atomic call. On Redis Cluster the
// events of one project are atomic, but a request spanning several projects
// is one call per project, in order; if one fails, earlier projects' events
// were published.
func NewRedis(rdb redis.UniversalClient, cfg RedisConfig) (*Publisher, error) {
	if rdb == nil {
		return nil, errors.New("publisher: NewRedis needs a Redis client")
	}
	if cfg.RetryBase < 0 || cfg.RetryMax < 0 {
		return nil, fmt.Errorf("publisher: negative RetryBase %v or RetryMax %v", cfg.RetryBase, cfg.RetryMax)
	}
	t := &redisTransport{rdb: rdb, opts: backplane.RedisPublishOptions{HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL}}
	t.retry = newRetry(cfg.MaxRetries, cfg.RetryBase, cfg.RetryMax)
	return &Publisher{t: t, now: time.Now}, nil
}

type redisTransport struct {
	rdb   redis.UniversalClient
	opts  backplane.RedisPublishOptions
	retry retryPolicy
}

func (t *redisTransport) close() error { return nil }

func (t *redisTransport) send(ctx context.Context, batch []encoded) ([]string, error) {
	evs := make([]syncgate.Event, len(batch))
	for i, e := range batch {
		evs[i] = *e.ev
	}
	return t.retry.do(ctx, func() ([]string, time.Duration, error) {
		offsets, err := backplane.RedisPublish(ctx, t.rdb, evs, t.opts)
		if err == nil {
			return offsets, 0, nil
		}
		e, retry := redisError(ctx, err)
		if retry {
			return nil, 0, e
		}
		return nil, -1, e
	})
}

// redisRefusals are Redis error replies that mean the command did not run.
var redisRefusals = []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "NOREPLICAS"}

// redisError converts a RedisPublish error and says whether the call
// certainly did not run (so retrying is safe).
func redisError(ctx context.Context, err error) (*Error, bool) {
	msg := err.Error()
	switch {
	case errors.Is(err, syncgate.ErrInvalidEvent):
		return &Error{Code: CodeBadRequest, Message: msg, err: err}, false
	case errors.Is(err, backplane.ErrUnavailable):
		if ctx.Err() == nil && notSent(msg) {
			return &Error{Code: CodeUnavailable, Message: msg, err: errors.Join(ErrUnavailable, err)}, true
		}
		return &Error{Code: CodeUnavailable,
			Message: "the call may have reached Redis but no answer arrived; the events may or may not be published: " + msg,
			err:     errors.Join(ErrUnavailable, ErrUncertain, err, ctx.Err())}, false
	case ctx.Err() != nil:
		return &Error{Code: CodeUnavailable, Message: msg, err: errors.Join(ErrUnavailable, ErrUncertain, err)}, false
	}
	return &Error{Code: CodeInternal, Message: msg, err: err}, false
}

// notSent recognises, in the text RedisPublish wraps (it keeps go-redis's
// error only as text), failures that happen before a command is written —
// dialing, an exhausted or closed pool — and Redis's refusals.
func notSent(msg string) bool {
	if strings.Contains(msg, "dial ") || strings.Contains(msg, "connection pool timeout") || strings.Contains(msg, "redis: client is closed") {
		return true
	}
	for _, r := range redisRefusals {
		if strings.Contains(msg, backplane.ErrUnavailable.Error()+": "+r) {
			return true
		}
	}
	return false
}
