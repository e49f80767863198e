package publisher

import (
	"context"
	"math/rand/v2"
	"time"
)

// retryPolicy retries attempts that report they certainly were not
// applied, with capped exponential backoff and jitter.
type retryPolicy struct {
	maxRetries int
	base, max  time.Duration
}

// newRetry applies the defaults of Config: 4 retries (negative: none), 100ms
// first backoff, 2s cap.
func newRetry(maxRetries int, base, limit time.Duration) retryPolicy {
	if maxRetries == 0 {
		maxRetries = 4
	}
	if maxRetries < 0 {
		maxRetries = 0
	}
	if base == 0 {
		base = 100 * time.Millisecond
	}
	if limit == 0 {
		limit = 2 * time.Second
	}
	return retryPolicy{maxRetries: maxRetries, base: base, max: max(limit, base)}
}

// do runs attempt until it succeeds, refuses a retry (retryAfter < 0), the
// retries are spent, or ctx ends during a backoff. retryAfter > 0 is the
// server's hint, honoured up to the cap.
func (r retryPolicy) do(ctx context.Context, attempt func() (offsets []string, retryAfter time.Duration, err error)) ([]string, error) {
	for n := 0; ; n++ {
		offsets, retryAfter, err := attempt()
		if err == nil {
			return offsets, nil
		}
		if retryAfter < 0 || n >= r.maxRetries {
			return nil, err
		}
		wait := backoff(r.base, r.max, n)
		if retryAfter > wait {
			wait = min(retryAfter, r.max)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, withCause(err, ctx.Err())
		case <-timer.C:
		}
	}
}

// backoff is the wait before retry number attempt+1: base·2^attempt capped
// at max, drawn uniformly from its upper half so that many publishers
// restarted together do not retry in step.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}
