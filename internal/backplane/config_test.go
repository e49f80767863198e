package backplane_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

// TestConfigsNameTheBadValue: every configuration refuses a negative value
// with an error naming the field and the value, instead of taking the
// default as it did (MemoryConfig.HistoryTTL and HistoryReaderConfig.Budget
// turned <= 0 into defaults; RedisConfig clamped a ReconnectMin above the
// default ReconnectMax).
func TestConfigsNameTheBadValue(t *testing.T) {
	redis := func(f func(*backplane.RedisConfig)) func() error {
		return func() error {
			c := backplane.RedisConfig{URL: "redis://127.0.0.1:1"}
			f(&c)
			return c.Validate()
		}
	}
	for _, c := range []struct {
		name     string
		validate func() error
		want     string // "" valid
	}{
		{"memory default", backplane.MemoryConfig{}.Validate, ""},
		{"memory no history", backplane.MemoryConfig{HistorySize: -1}.Validate, ""},
		{"memory negative TTL", backplane.MemoryConfig{HistoryTTL: -time.Second}.Validate, "MemoryConfig.HistoryTTL=-1s"},
		{"reader default", backplane.HistoryReaderConfig{}.Validate, ""},
		{"reader negative budget", backplane.HistoryReaderConfig{Budget: -5}.Validate, "HistoryReaderConfig.Budget=-5"},
		{"redis default", redis(func(*backplane.RedisConfig) {}), ""},
		{"redis no URL", redis(func(c *backplane.RedisConfig) { c.URL = "" }), "RedisConfig.URL is required"},
		{"redis bad URL", redis(func(c *backplane.RedisConfig) { c.URL = "http://h" }), "RedisConfig.URL: redis URL \"http://h\""},
		{"redis negative TTL", redis(func(c *backplane.RedisConfig) { c.HistoryTTL = -time.Hour }), "RedisConfig.HistoryTTL=-1h0m0s"},
		{"redis tiny TTL", redis(func(c *backplane.RedisConfig) { c.HistoryTTL = time.Microsecond }), "RedisConfig.HistoryTTL=1µs"},
		{"redis negative publish timeout", redis(func(c *backplane.RedisConfig) { c.PublishTimeout = -1 }), "RedisConfig.PublishTimeout=-1ns"},
		{"redis negative probe", redis(func(c *backplane.RedisConfig) { c.ProbeInterval = -time.Second }), "RedisConfig.ProbeInterval=-1s"},
		{"redis min above max", redis(func(c *backplane.RedisConfig) { c.ReconnectMin, c.ReconnectMax = 2*time.Second, time.Second }), "RedisConfig.ReconnectMin=2s exceeds ReconnectMax=1s"},
		{"redis min above the default max", redis(func(c *backplane.RedisConfig) { c.ReconnectMin = time.Minute }), "RedisConfig.ReconnectMin=1m0s exceeds ReconnectMax=5s"},
		{"redis small max, default min", redis(func(c *backplane.RedisConfig) { c.ReconnectMax = 10 * time.Millisecond }), ""},
		{"redis node id", redis(func(c *backplane.RedisConfig) { c.NodeID = "Node_1" }), `RedisConfig.NodeID="Node_1"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestInvalidConfigFailsAtUse: the constructors that return no error keep
// the validation error and fail with it at first use.
func TestInvalidConfigFailsAtUse(t *testing.T) {
	ctx := context.Background()
	m := backplane.NewMemory(backplane.MemoryConfig{HistoryTTL: -time.Second})
	const want = "MemoryConfig.HistoryTTL=-1s"
	if err := m.Start(ctx, nil); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Start: %v", err)
	}
	if _, err := m.Publish(ctx, []syncgate.Event{ev("p", "c", 1)}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Publish: %v", err)
	}
	if _, err := m.History(ctx, backplane.Stream{Project: "p", Collection: "c"}, "", backplane.Page{}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("History: %v", err)
	}
	r := backplane.NewHistoryReader(backplane.NewMemory(backplane.MemoryConfig{}), backplane.HistoryReaderConfig{Budget: -1})
	if _, err := r.Read(ctx, backplane.Stream{Project: "p", Collection: "c"}, "", backplane.Page{}, time.Now()); err == nil || !strings.Contains(err.Error(), "Budget=-1") {
		t.Errorf("Read: %v", err)
	}
	if _, err := backplane.NewRedis(backplane.RedisConfig{URL: "redis://127.0.0.1:1", SubscribeTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "SubscribeTimeout=-1s") {
		t.Errorf("NewRedis: %v", err)
	}
}
