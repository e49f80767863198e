package redisfn

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LibraryVersion is the version of the `syncgate` function library this
// package installs; syncgate_version returns it first. It changes with
// every change of the installed source (TestSourceUnchanged pins it), so a
// node can tell which source a Redis runs (docs/redis.md). 5: the age trim
// no longer walks the stream on every publish.
const LibraryVersion = "5"

// History limits when a configuration leaves them zero: every gateway, the
// in-memory backplane and a publisher installing the library use these.
const (
	DefaultHistorySize = 1000
	DefaultHistoryTTL  = 24 * time.Hour
)

// Owner says who installed the library (syncgate_version's fourth
// element).
type Owner string

// Owners of an installed library: a gateway (its limits are a gateway's
// configuration) or a publisher (it found the library missing and installed
// it with its own limits; gateways replace such a library at their next
// probe).
const (
	OwnerGateway   Owner = "gateway"
	OwnerPublisher Owner = "publisher"
)

// Limits are the history limits the library is installed with. They are
// constants of the installed source, so a publisher calling the function
// from any language trims by the gateway's settings without knowing them.
type Limits struct {
	// HistorySize is the number of events kept per stream; 0 means
	// DefaultHistorySize, negative keeps none.
	HistorySize int
	// HistoryTTL is how long events stay; 0 means DefaultHistoryTTL. At
	// least 1ms otherwise.
	HistoryTTL time.Duration
}

// resolved returns the stream length and age limit the source carries.
func (l Limits) resolved() (maxLen int, ttlMS int64) {
	maxLen = l.HistorySize
	switch {
	case maxLen == 0:
		maxLen = DefaultHistorySize
	case maxLen < 0:
		maxLen = 0
	}
	ttl := l.HistoryTTL
	if ttl <= 0 {
		ttl = DefaultHistoryTTL
	}
	return maxLen, ttl.Milliseconds()
}

// Validate names a limit that cannot be installed.
func (l Limits) Validate() error {
	if l.HistoryTTL < 0 {
		return fmt.Errorf("HistoryTTL=%s: must not be negative", l.HistoryTTL)
	}
	if l.HistoryTTL != 0 && l.HistoryTTL < time.Millisecond {
		return fmt.Errorf("HistoryTTL=%s: at least 1ms", l.HistoryTTL)
	}
	return nil
}

//go:embed syncgate.lua
var librarySource string

// Source returns the library's Lua source with l and owner filled in: the
// text FUNCTION LOAD receives. The placeholders of syncgate.lua take only
// these generated values (decimal integers, the version, an Owner
// constant), never caller text.
func Source(l Limits, owner Owner) string {
	if owner != OwnerGateway && owner != OwnerPublisher {
		owner = OwnerPublisher
	}
	maxLen, ttl := l.resolved()
	return strings.NewReplacer(
		"{{MAXLEN}}", strconv.Itoa(maxLen),
		"{{TTL_MS}}", strconv.FormatInt(ttl, 10),
		"{{VERSION}}", LibraryVersion,
		"{{OWNER}}", string(owner),
	).Replace(librarySource)
}

// Installed is what syncgate_version answers about the installed library.
type Installed struct {
	Version     string
	HistorySize int64
	HistoryTTL  time.Duration
	Owner       Owner
}

// Matches reports whether the installed library is this package's version
// with limits l.
func (in Installed) Matches(l Limits) bool {
	maxLen, ttl := l.resolved()
	return in.Version == LibraryVersion && in.HistorySize == int64(maxLen) && in.HistoryTTL.Milliseconds() == ttl
}

// Newer reports whether the installed library is a later version than this
// package's: a gateway of a later release installed it during a rolling
// upgrade. Versions are whole numbers; one that is not counts as older.
func (in Installed) Newer() bool {
	v, err := strconv.Atoi(in.Version)
	mine, _ := strconv.Atoi(LibraryVersion)
	return err == nil && v > mine
}

// InstalledOn asks one Redis (a cluster master, or a single Redis) which
// library it has. A Redis without it fails with an error IsFunctionMissing
// recognises.
func InstalledOn(ctx context.Context, c redis.Cmdable) (Installed, error) {
	v, err := c.FCallRO(ctx, "syncgate_version", nil).Slice()
	if err != nil {
		return Installed{}, err
	}
	var in Installed
	if len(v) > 0 {
		in.Version = fmt.Sprint(v[0])
	}
	if len(v) > 1 {
		in.HistorySize, _ = v[1].(int64)
	}
	if len(v) > 2 {
		ms, _ := v[2].(int64)
		in.HistoryTTL = time.Duration(ms) * time.Millisecond
	}
	if len(v) > 3 {
		in.Owner = Owner(fmt.Sprint(v[3]))
	}
	return in, nil
}

// ErrVersion is wrapped when a Redis holds a library of another version.
var ErrVersion = errors.New("redis function library syncgate has another version")

// CheckVersion verifies that every master of rdb runs this package's
// library version.
func CheckVersion(ctx context.Context, rdb redis.UniversalClient) error {
	return ForEachMaster(ctx, rdb, func(ctx context.Context, c redis.Cmdable) error {
		in, err := InstalledOn(ctx, c)
		if err != nil {
			return Classify("syncgate_version", err)
		}
		if in.Version != LibraryVersion {
			return fmt.Errorf("%w: %q, want %s", ErrVersion, in.Version, LibraryVersion)
		}
		return nil
	})
}

// Load installs the library with limits l on every master of rdb. With
// replace it replaces whatever is installed (FUNCTION LOAD REPLACE: a
// gateway's limits win); without, an installed library is kept (a publisher
// must not override a gateway's limits).
func Load(ctx context.Context, rdb redis.UniversalClient, l Limits, owner Owner, replace bool) error {
	src := Source(l, owner)
	err := ForEachMaster(ctx, rdb, func(ctx context.Context, c redis.Cmdable) error {
		if replace {
			return c.FunctionLoadReplace(ctx, src).Err()
		}
		err := c.FunctionLoad(ctx, src).Err()
		if err != nil && strings.Contains(err.Error(), "already exists") {
			return nil
		}
		return err
	})
	if err != nil {
		return Classify("loading the syncgate function library", err)
	}
	return nil
}

// LoadOn replaces the library on one Redis (c a single Redis or one
// cluster master), for a caller that checked it with InstalledOn.
func LoadOn(ctx context.Context, c redis.Cmdable, l Limits, owner Owner) error {
	return c.FunctionLoadReplace(ctx, Source(l, owner)).Err()
}

// ForEachMaster runs fn on every master of a cluster client, or on rdb
// itself. An error names the master it came from.
func ForEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, c redis.Cmdable) error) error {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return fn(ctx, rdb)
	}
	return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := fn(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", c.Options().Addr, err)
		}
		return nil
	})
}

// IsFunctionMissing reports the error of calling a function that is not
// loaded (a fresh or restarted Redis, or a new cluster master).
func IsFunctionMissing(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Function not found")
}
