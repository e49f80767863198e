package backplane

import (
	"context"
	"errors"

	"github.com/syncgate/syncgate"
)

// Stream names a history stream and its live channel.
type Stream struct {
	Project string
	// Collection is a collection name or syncgate.AllCollections for the
	// project-wide stream.
	Collection string
}

// String returns "project/collection", for logs and errors.
func (s Stream) String() string { return s.Project + "/" + s.Collection }

// History is the answer to a resume request: one page of it.
type History struct {
	// Events are the events after `since`, in offset order, each with its
	// Offset in this stream: at most one Page of them. Empty unless
	// Recovered.
	Events []syncgate.Event
	// More is true when events after the last of Events remain: the next
	// page is read with since set to that event's offset.
	More bool
	// Bytes is the size of Events' JSON as stored, what Page.MaxBytes
	// bounds.
	Bytes int
	// Head is the offset of the stream's newest event (or the stream's
	// starting point when it is empty). Live delivery continues after it.
	Head string
	// Recovered is true when Events holds every event after `since` (up to
	// the page's end, with More); false when some were trimmed or lost, or
	// since is an offset of another stream, and the reader must reload its
	// state.
	Recovered bool
}

// Page bounds one History read, so that no resume holds more history in
// memory than a page, however far back it starts.
type Page struct {
	// MaxEvents is the most events returned; default DefaultPageEvents.
	MaxEvents int
	// MaxBytes bounds the summed size of the events' JSON; default
	// DefaultPageBytes. One event is returned when any follows since,
	// whatever its size, so a read always makes progress.
	MaxBytes int
}

// withDefaults returns p with zero fields set to their defaults.
func (p Page) withDefaults() Page {
	if p.MaxEvents <= 0 {
		p.MaxEvents = DefaultPageEvents
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultPageBytes
	}
	return p
}

// Receiver takes live events from a backplane. Its methods must not block:
// the backplane calls them from its delivery loop. They are called with no
// backplane lock held, only the stream's delivery order, so they may call
// the backplane back (Unsubscribe, Ready, History, a Subscribe of a stream
// already received); a Subscribe that waits for Redis to confirm a new
// channel, or Memory's Publish, waits for the delivery that is calling.
type Receiver interface {
	// Receive delivers one live event of stream s, with ev.Offset set to its
	// offset in s and off that offset parsed (the backplane parses it once,
	// where the event enters the node). Events of one stream arrive in
	// offset order; after a reconnection the backplane may deliver an event
	// again, so receivers drop offsets they have already seen.
	Receive(s Stream, off Offset, ev *syncgate.Event)
	// Reset says that events of s after the last delivered one may have been
	// lost and cannot be replayed (history trimmed or Redis lost its data);
	// head is the stream's current head, from which delivery continues.
	Reset(s Stream, head Offset)
}

// Backplane stores history and delivers events between nodes.
type Backplane interface {
	// Start begins delivery to r. It is called once, before Subscribe. ctx
	// bounds Start only: delivery goes on until Close, even after ctx ends
	// (a draining node, whose signal context has ended, still delivers to
	// the clients it has not closed yet). Memory starts no goroutines;
	// Redis's run until Close, which stops them and waits for them.
	Start(ctx context.Context, r Receiver) error
	// Publish appends validated events to their collection and project
	// streams and delivers them, atomically per event. It returns each
	// event's offset in its collection stream. On error nothing of the
	// failing event was written; events before it in the slice may have been
	// (callers that need all-or-nothing validate first).
	Publish(ctx context.Context, events []syncgate.Event) ([]string, error)
	// Subscribe is called once per local subscription to s. When it returns
	// without error, every event of s published afterwards is delivered.
	// Implementations reference-count: the first call subscribes the node,
	// and the matching last Unsubscribe unsubscribes it.
	Subscribe(ctx context.Context, s Stream) error
	// Unsubscribe ends one local subscription to s.
	Unsubscribe(ctx context.Context, s Stream) error
	// History returns the first page of the events of s after since (an
	// offset from this stream; empty means none), and the head. It is
	// read after the call starts: a History that follows a Subscribe of s
	// misses nothing published after Subscribe returned.
	History(ctx context.Context, s Stream, since string, page Page) (History, error)
	// Close stops delivery and releases connections.
	Close() error
}

// Checker is implemented by backplanes that can be unavailable; Ready returns
// nil when publishing and subscribing work.
type Checker interface {
	Ready() error
}

// ErrUnavailable is wrapped by errors caused by the backplane being
// unreachable; the publish endpoint answers 503 for them.
var ErrUnavailable = errors.New("backplane unavailable")

// ErrBadOffset is wrapped when a `since` offset cannot be parsed.
var ErrBadOffset = errors.New("bad offset")
