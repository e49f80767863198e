package main

import (
	"errors"

	"github.com/syncgate/syncgate/publisher"
)

func openRedis(cfg *config) (*publisher.Publisher, func(), error) {
	return nil, nil, errors.New("--redis: not available yet")
}
