// Package redisfn is the contract between syncgate and Redis: the `syncgate`
// Redis Function library (syncgate.lua, embedded), the key and channel
// layout it works on, the parsing of syncgate's Redis URLs, the calls of its
// publish and history functions, and the errors they fail with.
//
// It is a leaf: it imports go-redis and the root event package only, so the
// gateway's backplane, the publisher's Redis transport (publisher/redispub)
// and cmd/publisher share one implementation without pulling in each other.
// docs/redis.md documents the layout and the functions for other languages.
//
// Errors: every Redis failure a call returns is classified once (Classify).
// errors.Is(err, ErrNotSent) means the command surely did not run (no
// connection, or Redis refused it: LOADING, MOVED, …) and retrying is safe;
// errors.Is(err, ErrMayHaveRun) means it was sent and no answer came, so a
// retry may publish twice. Events the function refuses wrap
// syncgate.ErrInvalidEvent.
//
// All functions are safe for concurrent use; the package holds no state.
package redisfn
