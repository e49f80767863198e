package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/syncgate/syncgate/internal/backplane"
	capture "github.com/syncgate/syncgate/internal/capture/postgres"
	"github.com/syncgate/syncgate/internal/metrics"
)

// postgresConfig is change capture from PostgreSQL: SYNCGATE_POSTGRES_URL
// (unset: off), _PUBLICATION and _SLOT (default syncgate), _PROJECT
// (default: the table's schema).
type postgresConfig struct {
	URL         string
	Publication string
	Slot        string
	Project     string
}

func loadPostgresConfig(c *postgresConfig, getenv func(string) string) {
	c.URL = getenv("SYNCGATE_POSTGRES_URL")
	c.Publication = getenv("SYNCGATE_POSTGRES_PUBLICATION")
	c.Slot = getenv("SYNCGATE_POSTGRES_SLOT")
	c.Project = getenv("SYNCGATE_POSTGRES_PROJECT")
}

// captureRunner runs the capture for the gateway's life. A nil one is off.
type captureRunner struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startCapture starts change capture when SYNCGATE_POSTGRES_URL is set.
// It runs until stop (called at the start of the drain), not on the
// signal context, so that it ends before the backplane closes.
func startCapture(cfg *config, log *slog.Logger, m *metrics.Metrics, bp backplane.Backplane) (*captureRunner, error) {
	pc := cfg.Postgres
	if pc.URL == "" {
		return nil, nil
	}
	pub, ok := bp.(capture.Publisher)
	if !ok {
		return nil, fmt.Errorf("SYNCGATE_POSTGRES_URL: the %s backplane cannot record capture positions", cfg.backplaneName())
	}
	c, err := capture.New(capture.Config{
		URL: pc.URL, Publication: pc.Publication, Slot: pc.Slot, Project: pc.Project,
		Logger: log, Metrics: m,
	}, pub)
	if err != nil {
		return nil, fmt.Errorf("SYNCGATE_POSTGRES_*: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &captureRunner{cancel: cancel}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_ = c.Run(ctx)
	}()
	return r, nil
}

// stop ends the capture and waits for it; the slot keeps what it did not
// publish for the next capturer.
func (r *captureRunner) stop() {
	if r == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
}
