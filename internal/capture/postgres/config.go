package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/metrics"
)

// Config configures a Capture. A zero field means its documented default.
type Config struct {
	// URL is the database to follow, as libpq takes it
	// (postgres://user:pass@host:5432/db?sslmode=…). Required.
	URL string
	// Publication is the publication to follow; created FOR ALL TABLES
	// when absent. [a-z0-9_]{1,40}; default "syncgate".
	Publication string
	// Slot is the logical replication slot; created with pgoutput when
	// absent. [a-z0-9_]{1,40}; default "syncgate".
	Slot string
	// Project, when set, is the project of every event instead of the
	// table's schema.
	Project string
	// InstallDDLTrigger installs the event trigger that captures schema
	// changes (the schema syncgate with its functions and snapshot table,
	// and the event triggers syncgate_ddl and syncgate_drop); default true.
	InstallDDLTrigger *bool
	// LockRetry is how often a node that does not capture tries to take
	// over; default 1s.
	LockRetry time.Duration
	// StatusInterval is how often the position is reported to the server
	// when nothing changes; default 10s (below wal_sender_timeout, 60s).
	StatusInterval time.Duration
	// MaxBatch is the most events per publish call; default 1000.
	MaxBatch int
	// BatchDelay is how long a committed transaction waits for the ones
	// after it to share its publish call (unless the call is full before);
	// default 5ms, negative for none.
	BatchDelay time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *metrics.Metrics
}

// Validate checks the configuration; the error names the field and value.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("postgres capture: URL is required")
	}
	if _, err := pgconn.ParseConfig(c.URL); err != nil {
		// pgconn's error does not repeat the password.
		return fmt.Errorf("postgres capture: URL: %w", err)
	}
	for _, f := range []struct{ name, v string }{{"Publication", c.Publication}, {"Slot", c.Slot}} {
		if f.v != "" && !validIdent(f.v) {
			return fmt.Errorf("postgres capture: %s %q must match [a-z0-9_]{1,40}", f.name, f.v)
		}
	}
	if c.Project != "" {
		if err := syncgate.ValidateProject(c.Project); err != nil {
			return fmt.Errorf("postgres capture: Project: %w", err)
		}
	}
	if c.LockRetry < 0 || c.StatusInterval < 0 || c.MaxBatch < 0 {
		return fmt.Errorf("postgres capture: LockRetry %s, StatusInterval %s and MaxBatch %d must not be negative", c.LockRetry, c.StatusInterval, c.MaxBatch)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Publication == "" {
		c.Publication = "syncgate"
	}
	if c.Slot == "" {
		c.Slot = "syncgate"
	}
	if c.InstallDDLTrigger == nil {
		on := true
		c.InstallDDLTrigger = &on
	}
	if c.LockRetry == 0 {
		c.LockRetry = time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.BatchDelay == 0 {
		c.BatchDelay = 5 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func validIdent(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
