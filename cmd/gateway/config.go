package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/transport/sse"
)

// config is the gateway's configuration, read from the environment; flags
// with the same meaning override it.
type config struct {
	Addr           string
	MetricsAddr    string
	RedisURL       string
	JWTSecret      string
	JWKSURL        string
	AuthURL        string
	AuthKey        string
	AuthTimeout    time.Duration
	AuthCacheTTL   time.Duration
	PublishKeys    string
	AllowedOrigins []string
	HistorySize    int
	HistoryTTL     time.Duration
	ShutdownGrace  time.Duration
	MaxConnections int
	// PublishTimeout bounds one publish to Redis (SYNCGATE_PUBLISH_TIMEOUT).
	PublishTimeout time.Duration
	// SSEKeepAlive is how often an idle /v1/sse stream gets a comment line
	// (SYNCGATE_SSE_KEEPALIVE).
	SSEKeepAlive time.Duration
	// Edge holds the HTTP timeouts and the unauthenticated-connection bound
	// (SYNCGATE_HTTP_*_TIMEOUT, SYNCGATE_MAX_UNAUTHENTICATED).
	Edge edge.Config
	// HistoryReadBudget bounds the history bytes being read for resuming
	// clients across the node (SYNCGATE_HISTORY_READ_BUDGET).
	HistoryReadBudget int
	LogFormat         string
	LogLevel          slog.Level
	Pprof             bool
	// Postgres: change capture (SYNCGATE_POSTGRES_*); see postgres.go.
	Postgres postgresConfig
	// Dev is set when no token configuration was given: a secret and a
	// publish key are generated and printed help follows.
	Dev bool
}

func (c *config) backplaneName() string {
	if c.RedisURL != "" {
		return "redis"
	}
	return "memory"
}

func loadConfig(args []string, getenv func(string) string) (*config, error) {
	c := &config{
		Addr:           "127.0.0.1:8080",
		HistorySize:    1000,
		HistoryTTL:     24 * time.Hour,
		ShutdownGrace:  25 * time.Second,
		AuthTimeout:    2 * time.Second,
		AuthCacheTTL:   60 * time.Second,
		PublishTimeout: 2 * time.Second,
		SSEKeepAlive:   sse.DefaultKeepAlive,
		Edge:           edge.Config{}.WithDefaults(),
		LogFormat:      "text",
	}
	var errs []string
	bad := func(name, val, why string) { errs = append(errs, fmt.Sprintf("%s=%q: %s", name, val, why)) }
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	str("SYNCGATE_ADDR", &c.Addr)
	str("SYNCGATE_METRICS_ADDR", &c.MetricsAddr)
	str("SYNCGATE_REDIS_URL", &c.RedisURL)
	str("SYNCGATE_JWT_SECRET", &c.JWTSecret)
	str("SYNCGATE_JWKS_URL", &c.JWKSURL)
	str("SYNCGATE_AUTH_URL", &c.AuthURL)
	str("SYNCGATE_AUTH_KEY", &c.AuthKey)
	str("SYNCGATE_PUBLISH_KEYS", &c.PublishKeys)
	str("SYNCGATE_LOG_FORMAT", &c.LogFormat)
	if v := getenv("SYNCGATE_ALLOWED_ORIGINS"); v != "" {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	intVar := func(name string, dst *int, min int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < min {
				bad(name, v, fmt.Sprintf("want an integer >= %d", min))
				return
			}
			*dst = n
		}
	}
	durVar := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			switch {
			case err != nil:
				bad(name, v, "want a duration such as 30s or 24h")
			case d < 0:
				bad(name, v, "must not be negative")
			default:
				*dst = d
			}
		}
	}
	positive := func(name string, dst *time.Duration) {
		durVar(name, dst)
		if v := getenv(name); *dst == 0 && v != "" {
			bad(name, v, "must be more than 0")
		}
	}
	intVar("SYNCGATE_HISTORY_SIZE", &c.HistorySize, 0)
	durVar("SYNCGATE_HISTORY_TTL", &c.HistoryTTL)
	durVar("SYNCGATE_SHUTDOWN_GRACE", &c.ShutdownGrace)
	intVar("SYNCGATE_MAX_CONNECTIONS", &c.MaxConnections, 0)
	positive("SYNCGATE_AUTH_TIMEOUT", &c.AuthTimeout)
	positive("SYNCGATE_AUTH_CACHE_TTL", &c.AuthCacheTTL)
	if c.AuthURL != "" {
		if err := (auth.WebhookConfig{URL: c.AuthURL}).Validate(); err != nil {
			bad("SYNCGATE_AUTH_URL", c.AuthURL, "want an http:// or https:// URL")
		}
	} else if c.AuthKey != "" {
		errs = append(errs, "SYNCGATE_AUTH_KEY is set but SYNCGATE_AUTH_URL is not: the key is only sent to the webhook")
	}
	// Limits that bound what a peer can hold: zero would disable them.
	positive("SYNCGATE_PUBLISH_TIMEOUT", &c.PublishTimeout)
	positive("SYNCGATE_SSE_KEEPALIVE", &c.SSEKeepAlive)
	positive("SYNCGATE_HTTP_HEADER_TIMEOUT", &c.Edge.HeaderTimeout)
	positive("SYNCGATE_HTTP_BODY_TIMEOUT", &c.Edge.BodyTimeout)
	positive("SYNCGATE_HTTP_WRITE_TIMEOUT", &c.Edge.WriteTimeout)
	positive("SYNCGATE_HTTP_IDLE_TIMEOUT", &c.Edge.IdleTimeout)
	intVar("SYNCGATE_MAX_UNAUTHENTICATED", &c.Edge.MaxUnauthenticated, 1)
	if v := getenv("SYNCGATE_HISTORY_READ_BUDGET"); v != "" {
		n, err := parseBytes(v)
		if err != nil || n < 1<<20 {
			bad("SYNCGATE_HISTORY_READ_BUDGET", v, "want a size of at least 1MiB, such as 64MiB or 67108864")
		} else {
			c.HistoryReadBudget = n
		}
	}
	if v := getenv("SYNCGATE_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad("SYNCGATE_LOG_LEVEL", v, "want debug, info, warn or error")
		}
	}
	if v := getenv("SYNCGATE_PPROF"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("SYNCGATE_PPROF", v, "want true or false")
		}
		c.Pprof = b
	}

	loadPostgresConfig(&c.Postgres, getenv)

	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address for clients and publishing (SYNCGATE_ADDR)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "separate listen address for /metrics (SYNCGATE_METRICS_ADDR)")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis backplane URL; empty for in-memory (SYNCGATE_REDIS_URL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json (SYNCGATE_LOG_FORMAT)")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve /debug/pprof on the metrics address (SYNCGATE_PPROF)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("SYNCGATE_LOG_FORMAT", c.LogFormat, "want text or json")
	}
	if len(errs) == 0 && c.Edge.WriteTimeout <= c.Edge.BodyTimeout {
		bad("SYNCGATE_HTTP_WRITE_TIMEOUT", c.Edge.WriteTimeout.String(), "must exceed SYNCGATE_HTTP_BODY_TIMEOUT ("+c.Edge.BodyTimeout.String()+"), or bodies read in time get no answer")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	if c.JWTSecret == "" && c.JWKSURL == "" && c.AuthURL == "" {
		c.Dev = true
		c.JWTSecret = randomHex(32)
	}
	if c.PublishKeys == "" && c.Dev {
		c.PublishKeys = "dev-" + randomHex(16)
	}
	return c, nil
}

// parseBytes reads a size: bytes, or a number with KiB, MiB or GiB.
func parseBytes(v string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.mult
			break
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n * mult, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
