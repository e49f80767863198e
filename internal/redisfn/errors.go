package redisfn

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
)

// ErrNotSent is wrapped by failures after which the command surely did not
// run: no connection could be made or taken from the pool, the client is
// closed, or Redis refused it without running it (Refusals). Retrying is
// safe.
var ErrNotSent = errors.New("not run by Redis")

// ErrMayHaveRun is wrapped by failures after the command was written: a
// timeout, a context that ended, a connection cut while waiting for the
// answer. Redis may have run it; retrying a publish may publish twice.
var ErrMayHaveRun = errors.New("sent to Redis, no answer: it may have run")

// Refusals are the Redis error replies that mean a command was not run:
// the server is loading, read-only, a cluster without quorum or slot
// coverage, a master without replicas or link, busy with a script, or the
// slot is elsewhere (MOVED, ASK: go-redis follows these itself and returns
// them only when its redirects ran out).
var Refusals = []string{"LOADING", "CLUSTERDOWN", "READONLY", "MASTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS", "MOVED", "ASK"}

// IsRefusal reports whether msg, a Redis error reply, is one of Refusals.
func IsRefusal(msg string) bool {
	for _, p := range Refusals {
		if rest, ok := strings.CutPrefix(msg, p); ok && (rest == "" || rest[0] == ' ') {
			return true
		}
	}
	return false
}

// Classify wraps err, the failure of operation op, once: with ErrNotSent
// when the command surely did not run, with ErrMayHaveRun when it may
// have, with syncgate.ErrInvalidEvent when the function refused an event
// (its "ERR syncgate: …" replies), and as it is for other Redis replies
// (a missing function, a wrong key type). err stays in the chain, so
// errors.Is still finds context.DeadlineExceeded or a net error.
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch {
		case IsRefusal(msg):
			return fmt.Errorf("%s: %w: %w", op, ErrNotSent, err)
		case strings.Contains(msg, "syncgate: "):
			return fmt.Errorf("%s: %w: %w", op, syncgate.ErrInvalidEvent, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	if notSent(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrNotSent, err)
	}
	// A context that ended, a timeout or a connection cut once the command
	// could have been written.
	return fmt.Errorf("%s: %w: %w", op, ErrMayHaveRun, err)
}

// notSent reports errors that mean the command never reached Redis: no
// connection could be made or taken from the pool, or the client is
// closed.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) ||
		errors.Is(err, redis.ErrClosed)
}
