package syncgate

import (
	"errors"
	"fmt"
)

// ErrInvalidName is wrapped by the errors of ValidateSubscription: a bad
// project or collection in a subscription, which is not an event.
var ErrInvalidName = errors.New("invalid name")

// ValidateProject checks an event's project id: [A-Za-z0-9_-]{1,64}.
func ValidateProject(p string) error {
	if !validName(p, 64, false) {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, projectRule(p))
	}
	return nil
}

// ValidateCollection checks an event's collection: [A-Za-z0-9_.-]{1,128}.
// The subscription wildcard "*" is not a collection; see ValidateSubscription.
func ValidateCollection(c string) error {
	if !validName(c, 128, true) {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, collectionRule(c))
	}
	return nil
}

// ValidateSubscription checks the project and collection of a subscription,
// where the collection may also be AllCollections. The error names the bad
// name and its rule and wraps ErrInvalidName.
func ValidateSubscription(project, collection string) error {
	if !validName(project, 64, false) {
		return fmt.Errorf("%w: %s", ErrInvalidName, projectRule(project))
	}
	if collection != AllCollections && !validName(collection, 128, true) {
		return fmt.Errorf("%w: %s (or \"*\" for every collection)", ErrInvalidName, collectionRule(collection))
	}
	return nil
}

func projectRule(p string) string {
	return fmt.Sprintf("project %q must match [A-Za-z0-9_-]{1,64}", clip(p))
}

func collectionRule(c string) string {
	return fmt.Sprintf("collection %q must match [A-Za-z0-9_.-]{1,128}", clip(c))
}

// ValidateType checks an event type: [a-z_:.]{1,64}.
func ValidateType(t string) error {
	if len(t) == 0 || len(t) > 64 {
		return fmt.Errorf("%w: type %q must match [a-z_:.]{1,64}", ErrInvalidEvent, clip(t))
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c == '_' || c == ':' || c == '.') {
			return fmt.Errorf("%w: type %q must match [a-z_:.]{1,64}", ErrInvalidEvent, clip(t))
		}
	}
	return nil
}

func validName(s string, max int, dot bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '.' && dot:
		default:
			return false
		}
	}
	return true
}

// clip shortens a bad value for an error message so a hostile 1 MiB name does
// not become a 1 MiB log line.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
