package backplane

import (
	"time"

	"github.com/syncgate/syncgate"
)

// Cursor is where a resuming subscription's history reading stands; the
// transports keep one per replaying subscription and read the next page
// only when the connection's queue has room for it.
//
// The replay ends at the head of the first page read after the
// subscription was confirmed (Until): live events after it are the
// subscription's pending ones, so the seam between replay and live has no
// gap and no duplicate, whatever was published while the client caught up.
type Cursor struct {
	// Since is the since of the next page: the offset of the last event
	// read, or the subscription's own since before any.
	Since string
	// More is true while pages remain to be read.
	More bool
	// Subscribed is when the backplane subscription was confirmed (see
	// HistoryReader.Read).
	Subscribed time.Time

	until    Offset
	hasUntil bool
}

// NewCursor starts the cursor of a subscription that asked for history
// after since (empty: none) and was subscribed at subscribed, with its first
// page p. It returns the page's events that belong to the replay.
func NewCursor(since string, subscribed time.Time, p SharedPage) (Cursor, []syncgate.Event) {
	c := Cursor{Since: since, Subscribed: subscribed}
	if since == "" {
		return c, nil
	}
	return c, c.Advance(p)
}

// Advance records page p, read with c.Since, and returns its events that
// belong to the replay (none past Until).
func (c *Cursor) Advance(p SharedPage) []syncgate.Event {
	if !p.Recovered {
		c.More = false
		return nil
	}
	if !c.hasUntil && p.Fresh {
		if h, err := ParseOffset(p.Head); err == nil {
			c.until, c.hasUntil = h, true
		}
	}
	events := p.Events
	reached := false
	if c.hasUntil {
		for i := range events {
			if o, err := ParseOffset(events[i].Offset); err == nil && c.until.Less(o) {
				events, reached = events[:i], true
				break
			}
		}
	}
	if n := len(events); n > 0 {
		c.Since = events[n-1].Offset
		if o, err := ParseOffset(c.Since); err == nil && c.hasUntil && !o.Less(c.until) {
			reached = true
		}
	}
	if c.hasUntil && !p.More {
		reached = true
	}
	// Until a page read after the subscription bounds the replay, read on
	// (a shared read from before it, even one at the stream's end then).
	c.More = !reached && (p.More || !c.hasUntil)
	return events
}

// Until returns where the replay ends, once a page read after the
// subscription told it.
func (c *Cursor) Until() (Offset, bool) { return c.until, c.hasUntil }

// ReplayPage is the page a connection with queue bound max reads next when
// used bytes of it are taken: half the bound (at most DefaultPageBytes),
// less when less room is left under half the bound, and one event when
// none is. The transports pull replay into the queue up to half its
// bound, so queued replay and the page held beside it stay within the
// bound; and one page fills what one pull moves, so the next page is read
// while the last is being written.
func ReplayPage(max, used int) Page {
	size := min(DefaultPageBytes, max/2)
	if room := max/2 - used; room < size {
		size = room
	}
	if size < 1 {
		return Page{MaxEvents: 1, MaxBytes: 1}
	}
	return Page{MaxBytes: size}
}
