package backplane

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/redisfn"
)

// RedisConfig configures the Redis backplane. A zero field means its
// documented default.
type RedisConfig struct {
	// URL selects Redis: redis://[user:pass@]host:port[/db] or rediss:// for
	// TLS; for Redis Cluster redis+cluster://host1:port,host2:port (or
	// rediss+cluster://), or a redis:// URL with several comma-separated
	// hosts. Query parameters are go-redis options (dial_timeout=…).
	// Required.
	URL string
	// HistorySize is the number of events kept per stream; default 1000. A
	// negative value keeps none (resume then only succeeds from the head).
	HistorySize int
	// HistoryTTL is how long events stay in history; default 24h. Trimming
	// by age happens when a stream is published to, and a stream nobody
	// publishes to expires whole HistoryTTL after its last event.
	HistoryTTL time.Duration
	// PublishTimeout bounds one publish call to Redis; default 2s.
	PublishTimeout time.Duration
	// SubscribeTimeout bounds waiting for Redis to confirm a subscription;
	// default 5s.
	SubscribeTimeout time.Duration
	// ProbeInterval is how often each pub/sub connection is probed with a
	// message on a private channel; default 2s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe may take to come back before the
	// connection counts as stalled and is rebuilt; default 3s.
	ProbeTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between attempts to reach Redis for pub/sub; defaults 100ms
	// and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *metrics.Metrics
	// NodeID names this node's probe channels; default random.
	NodeID string
}

// Validate names the first bad field.
func (c *RedisConfig) Validate() error {
	if c.URL == "" {
		return errors.New("RedisConfig.URL is required")
	}
	if _, err := redisfn.ParseURL(c.URL); err != nil {
		return fmt.Errorf("RedisConfig.URL: %w", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HistoryTTL", c.HistoryTTL}, {"PublishTimeout", c.PublishTimeout}, {"SubscribeTimeout", c.SubscribeTimeout},
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"ReconnectMin", c.ReconnectMin}, {"ReconnectMax", c.ReconnectMax},
	} {
		if d.v < 0 {
			return fmt.Errorf("RedisConfig.%s=%s: must not be negative", d.name, d.v)
		}
	}
	if c.HistoryTTL != 0 && c.HistoryTTL < time.Millisecond {
		return fmt.Errorf("RedisConfig.HistoryTTL=%s: at least 1ms", c.HistoryTTL)
	}
	if maxR := cmp.Or(c.ReconnectMax, DefaultReconnectMax); c.ReconnectMin > maxR {
		return fmt.Errorf("RedisConfig.ReconnectMin=%s exceeds ReconnectMax=%s", c.ReconnectMin, maxR)
	}
	for _, ch := range c.NodeID {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
			return fmt.Errorf("RedisConfig.NodeID=%q: want [a-z0-9-]", c.NodeID)
		}
	}
	return nil
}

func (c *RedisConfig) setDefaults() {
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.SubscribeTimeout == 0 {
		c.SubscribeTimeout = DefaultSubscribeTimeout
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.ReconnectMin == 0 {
		// Within a small ReconnectMax that was set (Validate checked one
		// that was set).
		c.ReconnectMin = min(DefaultReconnectMin, c.ReconnectMax)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NodeID == "" {
		c.NodeID = randomID()
	}
}

func randomID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 10)
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b)
}

// newClients returns the command client (fails fast: no retries, so a
// publish is never sent twice and a down Redis answers 503 at once), the
// pub/sub client (dials with capped exponential backoff and jitter) and the
// history client, hist: with the command client's options and a pool of its
// own, so however much history clients ask for, publishes and the probe
// never wait in line behind history reads for a connection.
//
// The command client honours its callers' context deadlines on the socket
// (ContextTimeoutEnabled): without it go-redis ignores them and waits for
// its own read timeout (5 s by default) on a Redis that accepts but does not
// answer, so PublishTimeout would not bound a publish.
func newClients(t redisfn.Target, min, max time.Duration) (cmd, sub, hist redis.UniversalClient) {
	o, co := t.CommandOptions()
	if o != nil {
		// The pub/sub client: reads wait as long as they need (no context
		// deadline on the socket), dials back off.
		so := *o
		so.ContextTimeoutEnabled = false
		so.Dialer = backoffDialer(min, max, o.TLSConfig, o.DialTimeout)
		ho := *o
		return redis.NewClient(o), redis.NewClient(&so), redis.NewClient(&ho)
	}
	so := *co
	so.ContextTimeoutEnabled = false
	so.MaxRetries = 0
	so.Dialer = backoffDialer(min, max, co.TLSConfig, co.DialTimeout)
	ho := *co
	return redis.NewClusterClient(co), redis.NewClusterClient(&so), redis.NewClusterClient(&ho)
}

// backoffDialer dials like go-redis does but, after a failed dial to an
// address, waits an exponentially growing, jittered delay (capped at max)
// before the next attempt to it, so nodes do not hammer a Redis that is
// coming back.
func backoffDialer(min, max time.Duration, tlsCfg *tls.Config, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var mu sync.Mutex
	fails := map[string]int{}
	last := map[string]time.Time{}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		n := fails[addr]
		since := time.Since(last[addr])
		mu.Unlock()
		if n > 0 {
			wait := backoff(n, min, max) - since
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil, ctx.Err()
				}
			}
		}
		conn, err := dialRedis(ctx, d, network, addr, tlsCfg)
		mu.Lock()
		if err != nil {
			fails[addr]++
			last[addr] = time.Now()
		} else {
			delete(fails, addr)
			delete(last, addr)
		}
		mu.Unlock()
		return conn, err
	}
}

// backoff is the delay before attempt n+1: min·2ⁿ⁻¹ capped at max, with ±50%
// jitter.
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}

func dialRedis(ctx context.Context, d *net.Dialer, network, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	if tlsCfg == nil {
		return d.DialContext(ctx, network, addr)
	}
	td := &tls.Dialer{NetDialer: d, Config: tlsCfg}
	return td.DialContext(ctx, network, addr)
}

// RedisLogger adapts l for go-redis's process-wide logger
// (redis.SetLogger), at debug level: go-redis logs every failed dial while
// Redis is down, and the backplane already logs the outage once.
func RedisLogger(l *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return redisLogger{l}
}

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
