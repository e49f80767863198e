package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/syncgate/syncgate"
)

// Claims is what a verified token grants.
type Claims struct {
	// Subject is the user id (`sub`), matched against audience.users.
	Subject string
	// ExpiresAt is `exp`; the connection is closed with 4009 then unless the
	// client refreshes its token.
	ExpiresAt time.Time
	// Projects lists the projects the user may read; "*" means every project.
	Projects []string
	// Collections lists the collections the user may read; nil means all,
	// and "*" in the list also means all.
	Collections []string
	// Roles are matched against audience.roles.
	Roles []string

	cred *credential // set when a webhook answered; see Renew
}

// MaxExpSeconds is the largest `exp` accepted, in seconds since the epoch
// (10^11 s is the year 5138). Every time written in milliseconds since 1973
// is larger, so a backend that writes `exp` in milliseconds (Date.now() + …)
// gets a refusal that says so instead of a token valid for millennia, whose
// expiry could not even be encoded as an RFC 3339 time in `ready.expiresAt`.
const MaxExpSeconds = 1e11

// ErrExpNotSeconds is wrapped when `exp` is too large to be a time in seconds.
var ErrExpNotSeconds = errors.New("exp is not in seconds")

// ParseExpiry parses the `exp` claim as RFC 7519 defines a NumericDate: a
// JSON number (not a string) of seconds since the epoch, at most
// MaxExpSeconds. Every verifier (JWT, webhook answers) reads `exp` with it,
// so every transport gets the same checks.
func ParseExpiry(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return time.Time{}, fmt.Errorf("exp must be a JSON number of seconds since the epoch (RFC 7519 NumericDate), not %s", clipClaim(raw))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("exp %s is not a number", clipClaim(raw))
	}
	if f > MaxExpSeconds {
		return time.Time{}, fmt.Errorf("%w: %s is after the year 5138; write exp as Unix seconds, not milliseconds", ErrExpNotSeconds, clipClaim(raw))
	}
	if f < 0 {
		f = 0 // before 1970: simply expired
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// Validate checks what every verifier must guarantee of the claims it
// returns: a subject, and an expiry within MaxExpSeconds.
func (c *Claims) Validate() error {
	if c.Subject == "" {
		return errors.New("claim sub is missing")
	}
	if c.ExpiresAt.IsZero() {
		return errors.New("claim exp is missing")
	}
	if c.ExpiresAt.Unix() > MaxExpSeconds {
		return fmt.Errorf("%w: %d is after the year 5138", ErrExpNotSeconds, c.ExpiresAt.Unix())
	}
	return nil
}

func clipClaim(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// ErrForbidden is wrapped when a token does not grant a subscription.
var ErrForbidden = fmt.Errorf("forbidden")

// CanRead returns nil when the claims allow subscribing to project and
// collection (which may be "*"), or an error wrapping ErrForbidden that says
// why. A token restricted to some collections may not subscribe to "*",
// since that would deliver every collection.
func (c *Claims) CanRead(project, collection string) error {
	if !slices.Contains(c.Projects, project) && !slices.Contains(c.Projects, "*") {
		return fmt.Errorf("%w: token does not grant project %q", ErrForbidden, project)
	}
	if c.Collections == nil || slices.Contains(c.Collections, "*") {
		return nil
	}
	if collection == syncgate.AllCollections {
		return fmt.Errorf("%w: token grants only some collections of %q, not \"*\"", ErrForbidden, project)
	}
	if !slices.Contains(c.Collections, collection) {
		return fmt.Errorf("%w: token does not grant collection %q", ErrForbidden, collection)
	}
	return nil
}
