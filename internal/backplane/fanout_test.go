package backplane_test

import (
	"slices"
	"testing"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

type recordingReceiver struct{ calls []string }

func (r *recordingReceiver) Receive(s backplane.Stream, off backplane.Offset, ev *syncgate.Event) {
	r.calls = append(r.calls, "receive "+s.String()+" "+off.String()+" "+ev.Offset)
}

func (r *recordingReceiver) Reset(s backplane.Stream, head backplane.Offset) {
	r.calls = append(r.calls, "reset "+s.String()+" "+head.String())
}

func TestFanout(t *testing.T) {
	a, b := &recordingReceiver{}, &recordingReceiver{}
	f := backplane.Fanout(a, b)
	s := backplane.Stream{Project: "p", Collection: "c"}
	f.Receive(s, backplane.Offset{Epoch: "e", Hi: 1}, &syncgate.Event{Offset: "e:1-0"})
	f.Reset(s, backplane.Offset{Epoch: "e", Hi: 2})
	want := []string{"receive p/c e:1-0 e:1-0", "reset p/c e:2-0"}
	if !slices.Equal(a.calls, want) || !slices.Equal(b.calls, want) {
		t.Fatalf("calls %q and %q, want %q each", a.calls, b.calls, want)
	}
	if one := backplane.Fanout(a); one != backplane.Receiver(a) {
		t.Fatal("Fanout of one receiver should be that receiver")
	}
}
