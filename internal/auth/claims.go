package auth

import (
	"fmt"
	"slices"
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
