package backplane

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/syncgate/syncgate/internal/redisfn"
)

// Offset is a parsed stream offset: "<epoch>t<stream>:<hi>-<lo>". The epoch
// changes when a stream's storage loses its data (a new process for Memory,
// a Redis that restarted empty), so an offset from before the loss is never
// mistaken for a position in the new stream. Stream is the tag of the
// stream the offset belongs to (StreamTag), so an offset handed back on
// another stream is recognised as foreign. Within an epoch, (Hi, Lo) orders
// events; for Redis they are the stream entry id, for Memory a counter and
// zero.
//
// Offsets from before stream tags ("<epoch>:<hi>-<lo>", Stream empty) still
// parse and resume as they did; the tag rides inside the alphanumeric epoch
// field, so nodes from before tags read new offsets too (as an epoch they do
// not know: recovered=false, never a wrong position).
type Offset struct {
	Epoch  string
	Stream string // StreamTag of the offset's stream; empty in untagged offsets
	Hi, Lo uint64
}

// tagLen is the length of a stream tag: 48 bits in hex.
const tagLen = redisfn.TagLen

// StreamTag is the tag that offsets of s carry: 48 bits of an FNV-1a hash
// of "project/collection", in hex (redisfn.StreamTag). Two streams share a
// tag with probability 2^-48.
func StreamTag(s Stream) string { return redisfn.StreamTag(s.Project, s.Collection) }

// ParseOffset parses an offset string; the error wraps ErrBadOffset.
func ParseOffset(s string) (Offset, error) {
	bad := func() (Offset, error) { return Offset{}, fmt.Errorf("%w: %q", ErrBadOffset, clip(s)) }
	epoch, rest, ok := strings.Cut(s, ":")
	if !ok || epoch == "" || len(epoch) > 32 {
		return bad()
	}
	for i := 0; i < len(epoch); i++ {
		c := epoch[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return bad()
		}
	}
	var tag string
	if base, t, ok := strings.Cut(epoch, "t"); ok {
		if base == "" || len(t) != tagLen || strings.Trim(t, "0123456789abcdef") != "" {
			return bad()
		}
		epoch, tag = base, t
	}
	hi, lo, ok := strings.Cut(rest, "-")
	if !ok {
		return bad()
	}
	h, err1 := strconv.ParseUint(hi, 10, 64)
	l, err2 := strconv.ParseUint(lo, 10, 64)
	if err1 != nil || err2 != nil {
		return bad()
	}
	return Offset{Epoch: epoch, Stream: tag, Hi: h, Lo: l}, nil
}

// String formats the offset.
func (o Offset) String() string {
	b := make([]byte, 0, len(o.Epoch)+1+len(o.Stream)+42)
	b = append(b, o.Epoch...)
	if o.Stream != "" {
		b = append(b, 't')
		b = append(b, o.Stream...)
	}
	b = append(b, ':')
	b = strconv.AppendUint(b, o.Hi, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, o.Lo, 10)
	return string(b)
}

// Less reports whether o comes before p. Offsets of different epochs, or
// of different streams, are not ordered; Less is false for them.
func (o Offset) Less(p Offset) bool {
	if o.Epoch != p.Epoch || o.Stream != "" && p.Stream != "" && o.Stream != p.Stream {
		return false
	}
	return o.Hi < p.Hi || o.Hi == p.Hi && o.Lo < p.Lo
}

// Foreign reports whether o is a tagged offset of a stream other than s:
// resuming s from it can never be complete.
func (o Offset) Foreign(s Stream) bool {
	return o.Stream != "" && o.Stream != StreamTag(s)
}

// In returns o tagged as an offset of s.
func (o Offset) In(s Stream) Offset {
	o.Stream = StreamTag(s)
	return o
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
