package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/publisher"
)

// openRedis returns a Publisher calling the gateway's Redis Function. The
// Redis client comes from the backplane's own URL parsing (so --redis takes
// exactly what SYNCGATE_REDIS_URL takes) and its command client, which
// never resends a command; the backplane itself is not started.
func openRedis(cfg *config) (*publisher.Publisher, func(), error) {
	bp, err := backplane.NewRedis(backplane.RedisConfig{URL: cfg.RedisURL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, nil, fmt.Errorf("--redis: %w", err)
	}
	p, err := publisher.NewRedis(bp.Client(), publisher.RedisConfig{MaxRetries: retries(cfg.Retries)})
	if err != nil {
		_ = bp.Close()
		return nil, nil, err
	}
	return p, func() { _ = p.Close(); _ = bp.Close() }, nil
}
