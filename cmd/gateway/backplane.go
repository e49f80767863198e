package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/demo"
	"github.com/syncgate/syncgate/internal/metrics"
)

// newBackplane returns the backplane the configuration selects.
func newBackplane(ctx context.Context, cfg *config, log *slog.Logger, m *metrics.Metrics) (backplane.Backplane, error) {
	if cfg.RedisURL == "" {
		return backplane.NewMemory(backplane.MemoryConfig{HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL}), nil
	}
	redis.SetLogger(backplane.RedisLogger(log))
	bp, err := backplane.NewRedis(backplane.RedisConfig{
		URL:            cfg.RedisURL,
		HistorySize:    cfg.HistorySize,
		HistoryTTL:     cfg.HistoryTTL,
		PublishTimeout: cfg.PublishTimeout,
		Logger:         log,
		Metrics:        m,
	})
	if err != nil {
		return nil, fmt.Errorf("SYNCGATE_REDIS_URL: %w", err)
	}
	return bp, nil
}

// devHandlers are served only by a development node: the demo page at "/"
// and the recent history it shows at /demo/recent.
func devHandlers(h demo.HistoryReader, v demo.TokenVerifier) map[string]http.Handler {
	return map[string]http.Handler{
		"/":  demo.Handler(),
		"/*": demo.Handler(),
		// What was published before the page opened.
		"/demo/recent": demo.Recent(h, v),
		// Browsers ask for it on every page; answer "none" instead of 404.
		"/favicon.ico": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }),
	}
}
