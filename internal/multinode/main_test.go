package multinode

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/internal/backplane"
)

func TestMain(m *testing.M) {
	redis.SetLogger(backplane.RedisLogger(quiet()))
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if buildDir != "" {
			_ = os.RemoveAll(buildDir)
		}
	}))
}
