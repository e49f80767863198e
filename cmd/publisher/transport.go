package main

import (
	"net/http"

	"github.com/syncgate/syncgate/publisher"
)

// openPublisher returns the Publisher for the configured transport and a
// function that closes it.
func openPublisher(cfg *config) (*publisher.Publisher, func(), error) {
	if cfg.RedisURL != "" {
		return openRedis(cfg)
	}
	p, err := publisher.New(publisher.Config{
		URL: cfg.URL, Key: cfg.Key, MaxRetries: retries(cfg.Retries),
		HTTPClient: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		UserAgent:  "syncgate-publisher-cli",
	})
	if err != nil {
		return nil, nil, err
	}
	return p, func() { _ = p.Close() }, nil
}

// retries maps the flag (0 means none) to Config.MaxRetries (0 means the
// default, negative none).
func retries(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
