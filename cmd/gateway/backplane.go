package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
)

// newBackplane returns the backplane the configuration selects.
func newBackplane(ctx context.Context, cfg *config, log *slog.Logger, m *metrics.Metrics) (backplane.Backplane, error) {
	if cfg.RedisURL == "" {
		return backplane.NewMemory(backplane.MemoryConfig{HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL}), nil
	}
	return nil, errors.New("SYNCGATE_REDIS_URL: the Redis backplane is not built into this version")
}

// devHandlers are served only by a development node.
func devHandlers() map[string]http.Handler {
	return nil
}
