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
)

// config is the gateway's configuration, read from the environment; flags
// with the same meaning override it.
type config struct {
	Addr           string
	MetricsAddr    string
	RedisURL       string
	JWTSecret      string
	JWKSURL        string
	PublishKeys    string
	AllowedOrigins []string
	HistorySize    int
	HistoryTTL     time.Duration
	ShutdownGrace  time.Duration
	MaxConnections int
	LogFormat      string
	LogLevel       slog.Level
	Pprof          bool
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
		Addr:          "127.0.0.1:8080",
		HistorySize:   1000,
		HistoryTTL:    24 * time.Hour,
		ShutdownGrace: 25 * time.Second,
		LogFormat:     "text",
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
			if err != nil || d < 0 {
				bad(name, v, "want a duration such as 30s or 24h")
				return
			}
			*dst = d
		}
	}
	intVar("SYNCGATE_HISTORY_SIZE", &c.HistorySize, 0)
	durVar("SYNCGATE_HISTORY_TTL", &c.HistoryTTL)
	durVar("SYNCGATE_SHUTDOWN_GRACE", &c.ShutdownGrace)
	intVar("SYNCGATE_MAX_CONNECTIONS", &c.MaxConnections, 0)
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
	if len(errs) > 0 {
		return nil, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	if c.JWTSecret == "" && c.JWKSURL == "" {
		c.Dev = true
		c.JWTSecret = randomHex(32)
	}
	if c.PublishKeys == "" && c.Dev {
		c.PublishKeys = "dev-" + randomHex(16)
	}
	return c, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
