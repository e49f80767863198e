package sse_test

import (
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/internal/backplane"
)

func TestMain(m *testing.M) {
	redis.SetLogger(backplane.RedisLogger(quietLog()))
	goleak.VerifyTestMain(m)
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
