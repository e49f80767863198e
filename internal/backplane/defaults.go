package backplane

import (
	"time"

	"github.com/syncgate/syncgate/internal/redisfn"
)

// The defaults of every configuration in this package, in one place: a
// zero Config field means the value here.

// DefaultHistorySize and DefaultHistoryTTL bound each stream's history
// (Memory and Redis; the Redis Function library carries the same defaults,
// redisfn).
const (
	DefaultHistorySize = redisfn.DefaultHistorySize
	DefaultHistoryTTL  = redisfn.DefaultHistoryTTL
)

// Page defaults: a page of history holds at most 500 events and 1 MiB.
const (
	DefaultPageEvents = 500
	DefaultPageBytes  = 1 << 20
)

// DefaultHistoryReadBudget is the node-wide bound on history bytes being
// read for resuming clients (HistoryReaderConfig.Budget).
const DefaultHistoryReadBudget = 64 << 20

// RedisConfig defaults.
const (
	DefaultPublishTimeout   = 2 * time.Second
	DefaultSubscribeTimeout = 5 * time.Second
	DefaultProbeInterval    = 2 * time.Second
	DefaultProbeTimeout     = 3 * time.Second
	DefaultReconnectMin     = 100 * time.Millisecond
	DefaultReconnectMax     = 5 * time.Second
)
