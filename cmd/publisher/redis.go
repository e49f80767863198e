package main

import (
	"fmt"

	"github.com/syncgate/syncgate/publisher"
	"github.com/syncgate/syncgate/publisher/redispub"
)

// openRedis returns a Publisher calling the gateway's Redis Function. The
// URL is parsed as the gateway parses SYNCGATE_REDIS_URL (redispub.Open
// shares the gateway's parser), and its client never resends a command.
func openRedis(cfg *config) (*publisher.Publisher, func(), error) {
	p, err := redispub.Open(cfg.RedisURL, redispub.Config{MaxRetries: retries(cfg.Retries)})
	if err != nil {
		return nil, nil, fmt.Errorf("--redis: %w", err)
	}
	return p, func() { _ = p.Close() }, nil
}
