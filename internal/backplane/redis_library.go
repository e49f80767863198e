package backplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/redisfn"
)

func (b *Redis) loadAndVerify(ctx context.Context) error {
	if err := b.installLibrary(ctx); err != nil {
		return err
	}
	return unavailable(redisfn.CheckVersion(ctx, b.cmd))
}

// limits are the history limits of this node's library.
func (b *Redis) limits() redisfn.Limits {
	return redisfn.Limits{HistorySize: b.cfg.HistorySize, HistoryTTL: b.cfg.HistoryTTL}
}

// installLibrary loads the function library with this node's limits,
// replacing whatever is installed.
func (b *Redis) installLibrary(ctx context.Context) error { return unavailable(b.load(ctx)) }

// load is installLibrary as a redisfn.Loader, its error as redisfn's.
func (b *Redis) load(ctx context.Context) error {
	return redisfn.Load(ctx, b.cmd, b.limits(), redisfn.OwnerGateway, true)
}

// ensureLibrary reinstalls the function library with this node's limits on
// every master where it is missing (Redis restarted empty, a new cluster
// master), older than this node's, or installed by a publisher (with the
// publisher's limits); a newer version (a later release rolling out) stays. A library another gateway installed stays: nodes are configured
// alike (docs/redis.md), and replacing it would make two misconfigured
// nodes take turns; a difference in limits is logged once.
func (b *Redis) ensureLibrary(ctx context.Context) {
	lim := b.limits()
	err := redisfn.ForEachMaster(ctx, b.cmd, func(ctx context.Context, c redis.Cmdable) error {
		in, err := redisfn.InstalledOn(ctx, c)
		why := ""
		switch {
		case err != nil && redisfn.IsFunctionMissing(err):
			why = "missing"
		case err != nil:
			return err
		case in.Newer():
			// A node of a later release is rolling out: replacing its
			// library would make the two releases take turns at every
			// probe. Each version keeps the functions and arguments of
			// the ones before it (docs/redis.md), so this node can call it.
			if !b.newerWarned.Swap(true) {
				b.log.Info("a newer gateway installed the function library; leaving it", "installed_version", in.Version, "version", redisfn.LibraryVersion)
			}
			return nil
		case in.Version != redisfn.LibraryVersion || in.Owner == "":
			why = "outdated"
		case in.Owner != redisfn.OwnerGateway:
			why = "installed by a publisher"
		default:
			if !in.Matches(lim) && !b.limitsWarned.Swap(true) {
				b.log.Warn("another gateway installed the function library with other history limits; configure every node alike",
					"installed_history_size", in.HistorySize, "installed_history_ttl", in.HistoryTTL.String(),
					"history_size", b.cfg.HistorySize, "history_ttl", b.cfg.HistoryTTL.String())
			}
			return nil
		}
		if err := redisfn.LoadOn(ctx, c, lim, redisfn.OwnerGateway); err != nil {
			return err
		}
		b.log.Info("installed the redis function library with this node's history limits", "was", why)
		return nil
	})
	if err != nil {
		b.log.Debug("checking the function library failed", "err", err)
	}
}

// library the gateway installs (redisfn.LibraryVersion).
const RedisLibraryVersion = redisfn.LibraryVersion

// classify is redisfn.Classify mapped onto the backplane's errors.
func classify(op string, err error) error { return unavailable(redisfn.Classify(op, err)) }

// unavailable maps an error redisfn classified onto the backplane's: one
// that did not reach Redis wraps ErrUnavailable; one that may have run wraps
// ErrUnavailable and context.DeadlineExceeded (or the context's own error),
// which Publish turns into an unknown outcome. Others are returned as they
// are.
func unavailable(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redisfn.ErrNotSent):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.Is(err, redisfn.ErrMayHaveRun):
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, context.DeadlineExceeded, err)
	}
	return err
}

// Key and channel names (redisfn, docs/redis.md) of a Stream.
func channelName(s Stream) string { return redisfn.ChannelName(s.Project, s.Collection) }

func probeChannel(group, node string) string { return redisfn.ProbeChannel(group, node) }
