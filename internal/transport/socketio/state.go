package socketio

import (
	"errors"
	"fmt"
	"strings"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
)

// kind says how a subscription was made, which decides the events it emits.
type kind byte

const (
	kindProject    kind = 'j' // join-project: database-change and project-event
	kindCollection kind = 's' // subscribe: document:* and collection:cleared
)

// subKey names one subscription of a connection: hub.SubKey with Kind a
// kind. A connection may hold both kinds on the same stream (join-project
// p and subscribe {p, "*"}).
type subKey = hub.SubKey

func keyOf(k kind, s backplane.Stream) subKey { return subKey{Kind: byte(k), Stream: s} }

// Recovery state
//
// Socket.IO's connection state recovery works like this: the server appends
// an opaque offset string as the last argument of each event it emits; the
// client (socket.io-client >= 4.6) remembers the last one, and after a
// disconnection sends it back, with the session's pid, in the CONNECT
// payload. syncgate keeps no session on the server (the reconnect may land
// on another node), so the offset it hands out is the whole session:
//
//	sg1|j<project>/*@<offset>|s<project>/<collection>@<offset>…
//
// one entry per subscription with the syncgate offset of the last event
// written to the client on it (or the stream head when it was joined). Every
// event the connection emits carries the state as of that event, including
// joined-project, left-project, subscribed and unsubscribed, so the client's
// last offset always names every subscription it holds.

const statePrefix = "sg1"

// errBadState is wrapped when a client hands back an offset string that is
// not a recovery state.
var errBadState = errors.New("bad recovery offset")

// appendState appends the state string of the subscriptions in keys (sorted
// by compareKeys, so the string is stable) with their offsets in offs.
func appendState(b []byte, keys []subKey, offs map[subKey]backplane.Offset) []byte {
	b = append(b, statePrefix...)
	for _, k := range keys {
		b = append(b, '|', k.Kind)
		b = append(b, k.Stream.Project...)
		b = append(b, '/')
		b = append(b, k.Stream.Collection...)
		b = append(b, '@')
		b = append(b, offs[k].String()...)
	}
	return b
}

// decodeState parses a state string handed back by a client; at most max
// entries are accepted.
func decodeState(s string, max int) (map[subKey]backplane.Offset, error) {
	parts := strings.Split(s, "|")
	if parts[0] != statePrefix {
		return nil, fmt.Errorf("%w: not a syncgate offset", errBadState)
	}
	if len(parts)-1 > max {
		return nil, fmt.Errorf("%w: %d subscriptions, at most %d", errBadState, len(parts)-1, max)
	}
	subs := make(map[subKey]backplane.Offset, len(parts)-1)
	for _, p := range parts[1:] {
		if len(p) < 2 || kind(p[0]) != kindProject && kind(p[0]) != kindCollection {
			return nil, fmt.Errorf("%w: bad entry", errBadState)
		}
		name, offset, ok := strings.Cut(p[1:], "@")
		project, collection, ok2 := strings.Cut(name, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%w: bad entry", errBadState)
		}
		if err := syncgate.ValidateSubscription(project, collection); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadState, err)
		}
		k := keyOf(kind(p[0]), backplane.Stream{Project: project, Collection: collection})
		if kind(k.Kind) == kindProject && collection != syncgate.AllCollections {
			return nil, fmt.Errorf("%w: a joined project is a whole project", errBadState)
		}
		off, err := backplane.ParseOffset(offset)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadState, err)
		}
		if _, dup := subs[k]; dup {
			return nil, fmt.Errorf("%w: duplicate entry", errBadState)
		}
		subs[k] = off
	}
	return subs, nil
}
