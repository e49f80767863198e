package backplane

import (
	"fmt"
	"strconv"
	"strings"
)

// Offset is a parsed stream offset: "<epoch>:<hi>-<lo>". The epoch changes
// when a stream's storage loses its data (a new process for Memory, a Redis
// that restarted empty), so an offset from before the loss is never mistaken
// for a position in the new stream. Within an epoch, (Hi, Lo) orders events;
// for Redis they are the stream entry id, for Memory a counter and zero.
type Offset struct {
	Epoch  string
	Hi, Lo uint64
}

// ParseOffset parses an offset string; the error wraps ErrBadOffset.
func ParseOffset(s string) (Offset, error) {
	epoch, rest, ok := strings.Cut(s, ":")
	if !ok || epoch == "" || len(epoch) > 32 {
		return Offset{}, fmt.Errorf("%w: %q", ErrBadOffset, clip(s))
	}
	for i := 0; i < len(epoch); i++ {
		c := epoch[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return Offset{}, fmt.Errorf("%w: %q", ErrBadOffset, clip(s))
		}
	}
	hi, lo, ok := strings.Cut(rest, "-")
	if !ok {
		return Offset{}, fmt.Errorf("%w: %q", ErrBadOffset, clip(s))
	}
	h, err1 := strconv.ParseUint(hi, 10, 64)
	l, err2 := strconv.ParseUint(lo, 10, 64)
	if err1 != nil || err2 != nil {
		return Offset{}, fmt.Errorf("%w: %q", ErrBadOffset, clip(s))
	}
	return Offset{Epoch: epoch, Hi: h, Lo: l}, nil
}

// String formats the offset.
func (o Offset) String() string {
	return o.Epoch + ":" + strconv.FormatUint(o.Hi, 10) + "-" + strconv.FormatUint(o.Lo, 10)
}

// Less reports whether o comes before p. Offsets of different epochs are not
// ordered; Less is false for them.
func (o Offset) Less(p Offset) bool {
	if o.Epoch != p.Epoch {
		return false
	}
	return o.Hi < p.Hi || o.Hi == p.Hi && o.Lo < p.Lo
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
