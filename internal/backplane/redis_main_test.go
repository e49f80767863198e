package backplane_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/internal/backplane"
)

func TestMain(m *testing.M) {
	// go-redis logs each failed dial of the outage tests; keep output readable.
	redis.SetLogger(backplane.RedisLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	goleak.VerifyTestMain(m)
}
