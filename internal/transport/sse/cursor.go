package sse

import (
	"errors"
	"fmt"
	"strings"

	"github.com/syncgate/syncgate/internal/backplane"
)

// Cursor format
//
// The id of every message is the stream's cursor: where each of its
// subscriptions stands, so that the browser's Last-Event-ID (or the
// lastEventId query parameter) resumes all of them, on any node:
//
//	1.<tag>~<epoch>:<hi>-<lo>,<tag>!<offset>,…
//
// One entry per subscription that has a position, keyed by the stream tag
// of its stream (backplane.StreamTag: the subscriptions themselves are in
// the URL, which the browser repeats). `~` is the common case, an offset of
// that very stream with its tag left out, since the key says it; `!` keeps
// an offset verbatim (an untagged one, or the since asked for a
// subscription the server has not answered yet). A subscription's position
// is the offset of the last event written on it, else its stream head from
// `subscribed`, else, before its `subscribed`, the since it was asked with.

// cursorVersion prefixes every cursor, so that a later format can be told
// from this one.
const cursorVersion = "1."

// MaxCursorBytes bounds a cursor handed back: 100 subscriptions of the
// longest offsets fit.
const MaxCursorBytes = 16 << 10

// errBadCursor is wrapped by every cursor decoding failure.
var errBadCursor = errors.New("bad Last-Event-ID")

// Cursor is a decoded cursor: a position per stream tag.
type Cursor map[string]string

// Since returns the position the cursor holds for s, if any.
func (c Cursor) Since(s backplane.Stream) (string, bool) {
	off, ok := c[backplane.StreamTag(s)]
	return off, ok
}

// ParseCursor decodes a cursor the server handed out; at most max entries
// are accepted. Every offset in it must parse, and no stream may appear
// twice.
func ParseCursor(s string, max int) (Cursor, error) {
	if len(s) > MaxCursorBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errBadCursor, len(s), MaxCursorBytes)
	}
	body, ok := strings.CutPrefix(s, cursorVersion)
	if !ok {
		return nil, fmt.Errorf("%w: %.80q is not a cursor of this gateway (it starts with %q)", errBadCursor, s, cursorVersion)
	}
	c := Cursor{}
	if body == "" {
		return c, nil
	}
	for i, e := range strings.Split(body, ",") {
		if i >= max {
			return nil, fmt.Errorf("%w: more than %d positions", errBadCursor, max)
		}
		tag, off, err := parseEntry(e)
		if err != nil {
			return nil, fmt.Errorf("%w: position %d %.80q: %v", errBadCursor, i+1, e, err)
		}
		if _, dup := c[tag]; dup {
			return nil, fmt.Errorf("%w: stream %s appears twice", errBadCursor, tag)
		}
		c[tag] = off
	}
	return c, nil
}

// tagLen is the length of a backplane.StreamTag.
const tagLen = 12

func parseEntry(e string) (tag, off string, err error) {
	if len(e) < tagLen+2 || strings.Trim(e[:tagLen], "0123456789abcdef") != "" {
		return "", "", errors.New("does not start with a stream tag")
	}
	tag, rest := e[:tagLen], e[tagLen+1:]
	switch e[tagLen] {
	case '~':
		epoch, pos, ok := strings.Cut(rest, ":")
		if !ok || strings.Contains(epoch, "t") {
			return "", "", errors.New("bad offset")
		}
		off = epoch + "t" + tag + ":" + pos
	case '!':
		off = rest
	default:
		return "", "", errors.New("the stream tag must be followed by '~' or '!'")
	}
	if _, err := backplane.ParseOffset(off); err != nil {
		return "", "", err
	}
	return tag, off, nil
}

// positions is the live cursor of one stream: a position per subscription,
// in the order of the URL. It is owned by the stream's writer.
type positions struct {
	tags    []string
	entries []string // encoded entry per subscription, "" without a position
}

func newPositions(subs []Subscription) *positions {
	p := &positions{tags: make([]string, len(subs)), entries: make([]string, len(subs))}
	for i, s := range subs {
		p.tags[i] = backplane.StreamTag(s.Stream)
		if s.Since != "" {
			p.set(i, s.Since)
		}
	}
	return p
}

// set records off as subscription i's position.
func (p *positions) set(i int, off string) {
	tag := p.tags[i]
	if epoch, rest, ok := strings.Cut(off, "t"+tag+":"); ok && !strings.Contains(epoch, ":") {
		p.entries[i] = tag + "~" + epoch + ":" + rest
		return
	}
	p.entries[i] = tag + "!" + off
}

// appendID appends the cursor to b.
func (p *positions) appendID(b []byte) []byte {
	b = append(b, cursorVersion...)
	first := true
	for _, e := range p.entries {
		if e == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, e...)
	}
	return b
}
