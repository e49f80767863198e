package redispub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/publisher"
	"github.com/syncgate/syncgate/publisher/redispub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  redispub.Config
		want string
	}{
		{redispub.Config{}, ""},
		{redispub.Config{MaxRetries: -1, HistorySize: -1}, ""},
		{redispub.Config{RetryBase: -time.Second}, "Config.RetryBase=-1s"},
		{redispub.Config{RetryMax: -time.Millisecond}, "Config.RetryMax=-1ms"},
		{redispub.Config{HistoryTTL: -time.Hour}, "Config.HistoryTTL=-1h0m0s"},
		{redispub.Config{HistoryTTL: time.Microsecond}, "Config.HistoryTTL=1µs"},
	} {
		err := c.cfg.Validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
		if c.want != "" {
			if _, err := redispub.Open("redis://127.0.0.1:1", c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open with %+v: %v, want %q", c.cfg, err, c.want)
			}
		}
	}
	if _, err := redispub.New(nil, redispub.Config{}); err == nil {
		t.Error("New(nil) accepted")
	}
	if _, err := redispub.Open("http://x", redispub.Config{}); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Errorf("Open of an http URL: %v", err)
	}
}

// TestOpen publishes through a URL, as cmd/publisher does, and reports a
// Redis that is gone as unavailable, certainly not published.
func TestOpen(t *testing.T) {
	srv := redistest.Start(t)
	p, err := redispub.Open(srv.URL(), redispub.Config{RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	off, err := p.DocumentCreated(ctx, "p1", "rows", "d1", "u", map[string]int{"n": 1})
	if err != nil || !strings.Contains(off, "t") {
		t.Fatalf("publish: %q %v", off, err)
	}
	if n, _ := srv.Do("XLEN", "sg:{p1}:s:rows"); n != "1" {
		t.Errorf("stream length %s, want 1", n)
	}
	_, err = p.Publish(ctx, syncgate.Event{Type: "insert", Project: "p1", Collection: "bad name"})
	if !errors.Is(err, syncgate.ErrInvalidEvent) {
		t.Errorf("invalid event: %v", err)
	}
	srv.Kill()
	_, err = p.DocumentCreated(ctx, "p1", "rows", "d2", "u", nil)
	var pe *publisher.Error
	if !errors.As(err, &pe) || pe.Code != publisher.CodeUnavailable || !errors.Is(err, publisher.ErrUnavailable) || errors.Is(err, publisher.ErrUncertain) {
		t.Errorf("Redis gone: %v, want unavailable and certain", err)
	}
}
