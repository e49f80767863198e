package backplane_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
)

// TestRedisPublishTimeoutDuringFreeze freezes a real redis-server with
// SIGSTOP (its socket stays open and accepts writes, nothing answers) and
// checks that each publish gives up within PublishTimeout, however the
// go-redis read timeout, retries or pool waits are set, and says the outcome
// is unknown (context.DeadlineExceeded: a 504 on /v1/publish).
func TestRedisPublishTimeoutDuringFreeze(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 300 * time.Millisecond
	b, _ := startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) { c.PublishTimeout = timeout })
	ctx := context.Background()
	if _, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 1)}); err != nil {
		t.Fatal(err)
	}
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	for i := range 3 {
		start := time.Now()
		_, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 2+i)})
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, backplane.ErrUnavailable) {
			t.Fatalf("publish %d during the freeze: %v, want a timeout or ErrUnavailable", i, err)
		}
		t.Logf("publish %d during the freeze: %s: %v", i, took, err)
		if took > timeout+time.Second {
			t.Fatalf("publish %d during the freeze took %s, PublishTimeout is %s", i, took, timeout)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	await(t, 10*time.Second, "publishing after the freeze", func() bool {
		_, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c", 9)})
		return err == nil
	})
}
