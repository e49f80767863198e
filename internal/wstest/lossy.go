package wstest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

// Lossy is an in-memory backplane that can lose live events at the node,
// as a broken Redis pub/sub connection does, and send the Reset the Redis
// backplane sends when history cannot fill such a gap.
type Lossy struct {
	*backplane.Memory
	r         backplane.Receiver
	drop      atomic.Bool
	onHistory atomic.Pointer[func(s backplane.Stream)]
}

// NewLossy returns a Lossy over a fresh Memory backplane.
func NewLossy() *Lossy {
	return &Lossy{Memory: backplane.NewMemory(backplane.MemoryConfig{})}
}

// Start implements backplane.Backplane, putting l between Memory and r.
func (l *Lossy) Start(ctx context.Context, r backplane.Receiver) error {
	l.r = r
	return l.Memory.Start(ctx, l)
}

// Receive implements backplane.Receiver: it forwards unless dropping.
func (l *Lossy) Receive(s backplane.Stream, off backplane.Offset, ev *syncgate.Event) {
	if !l.drop.Load() {
		l.r.Receive(s, off, ev)
	}
}

// Reset implements backplane.Receiver.
func (l *Lossy) Reset(s backplane.Stream, head backplane.Offset) { l.r.Reset(s, head) }

// ResetTo sends the Reset the Redis backplane sends, at head (an offset
// string, as tests hold them).
func (l *Lossy) ResetTo(t testing.TB, s backplane.Stream, head string) {
	t.Helper()
	off, err := backplane.ParseOffset(head)
	if err != nil {
		t.Fatalf("ResetTo %s: %v", s, err)
	}
	l.r.Reset(s, off)
}

// History implements backplane.Backplane; it runs the hook set with
// OnNextHistory after reading, once.
func (l *Lossy) History(ctx context.Context, s backplane.Stream, since string, page backplane.Page) (backplane.History, error) {
	h, err := l.Memory.History(ctx, s, since, page)
	if f := l.onHistory.Swap(nil); f != nil {
		(*f)(s)
	}
	return h, err
}

// OnNextHistory runs f (once) right after the next History call has read
// its answer: between History and live delivery of a subscription.
func (l *Lossy) OnNextHistory(f func(s backplane.Stream)) { l.onHistory.Store(&f) }

// LoseOne publishes Doc(s, seq), which the node never receives, and returns
// its offset; the test decides whether a Reset follows.
func (l *Lossy) LoseOne(t testing.TB, s backplane.Stream, seq int) string {
	l.drop.Store(true)
	offs, err := l.Memory.Publish(context.Background(), []syncgate.Event{Doc(s.Project, s.Collection, seq)})
	l.drop.Store(false)
	if err != nil {
		t.Error(err)
		return ""
	}
	return offs[0]
}
