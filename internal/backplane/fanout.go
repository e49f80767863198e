package backplane

import "github.com/syncgate/syncgate"

// Fanout returns a Receiver that hands every call to each of rs in turn, so
// one backplane can feed several client protocols of a node (the native hub
// and the Socket.IO endpoint). The receivers share the *syncgate.Event and
// must not modify it; like any Receiver they must not block.
func Fanout(rs ...Receiver) Receiver {
	if len(rs) == 1 {
		return rs[0]
	}
	return fanout(append([]Receiver(nil), rs...))
}

type fanout []Receiver

func (f fanout) Receive(s Stream, off Offset, ev *syncgate.Event) {
	for _, r := range f {
		r.Receive(s, off, ev)
	}
}

func (f fanout) Reset(s Stream, head Offset) {
	for _, r := range f {
		r.Reset(s, head)
	}
}
