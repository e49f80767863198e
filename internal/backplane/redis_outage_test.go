package backplane_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
)

// TestRedisReleaseDuringOutage: with Redis down, ending subscriptions does
// not wait for the pub/sub connection's redial, one after another (it took
// seconds each); the channels the connection resubscribes on reconnecting
// are unsubscribed again, and subscribing works as before.
func TestRedisReleaseDuringOutage(t *testing.T) {
	srv := redistest.Start(t)
	b, r := startRedisBP(t, srv.URL(), func(c *backplane.RedisConfig) {
		c.SubscribeTimeout = time.Second
		c.ProbeInterval, c.ProbeTimeout = 200*time.Millisecond, 500*time.Millisecond
	})
	ctx := context.Background()
	var streams []backplane.Stream
	for i := range 12 {
		s := backplane.Stream{Project: "p1", Collection: fmt.Sprint("c", i)}
		if err := b.Subscribe(ctx, s); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	srv.Kill()
	await(t, 5*time.Second, "not ready", func() bool { return b.Ready() != nil })
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() { _ = b.Unsubscribe(ctx, s) })
	}
	wg.Wait()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("12 unsubscribes during the outage took %s", d)
	}
	if err := b.Subscribe(ctx, streams[0]); err == nil {
		t.Fatal("subscribe with Redis known down succeeded")
	}

	srv.Restart()
	await(t, 10*time.Second, "ready again", func() bool { return b.Ready() == nil })
	await(t, 10*time.Second, "stale channels unsubscribed", func() bool {
		n, err := srv.Do("PUBSUB", "SHARDNUMSUB", "sg:{p1}:c:c0")
		return err == nil && n == "sg:{p1}:c:c0\n0"
	})
	if err := b.Subscribe(ctx, streams[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, []syncgate.Event{ev("p1", "c0", 1)}); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "delivery after the outage", func() bool { return len(r.get(streams[0])) == 1 })
}
