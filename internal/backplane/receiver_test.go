package backplane_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
)

// callbackReceiver calls back into its backplane from inside Receive, as a
// receiver that ends a client's subscription or checks health there might.
// Called with a backplane lock held, it deadlocks.
type callbackReceiver struct {
	bp      backplane.Backplane
	entered chan struct{} // Receive started (buffered)
	hold    chan struct{} // when set, Receive waits for it to close first
	done    chan error    // what each Receive's calls returned (buffered)
}

func newCallbackReceiver() *callbackReceiver {
	return &callbackReceiver{entered: make(chan struct{}, 16), done: make(chan error, 16)}
}

func (r *callbackReceiver) Receive(s backplane.Stream, _ backplane.Offset, ev *syncgate.Event) {
	r.entered <- struct{}{}
	if r.hold != nil {
		<-r.hold
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A second subscription of a stream this node already receives, and its
	// end: neither waits for Redis.
	err := errors.Join(r.bp.Subscribe(ctx, s), r.bp.Unsubscribe(ctx, s))
	if c, ok := r.bp.(backplane.Checker); ok {
		err = errors.Join(err, c.Ready())
	}
	if _, herr := r.bp.History(ctx, s, "", backplane.Page{MaxEvents: 1}); herr != nil {
		err = errors.Join(err, herr)
	}
	r.done <- err
}

func (r *callbackReceiver) Reset(backplane.Stream, backplane.Offset) {}

// receiverBackplanes returns each backplane started with r.
func receiverBackplanes(t *testing.T) map[string]func(r *callbackReceiver) backplane.Backplane {
	return map[string]func(r *callbackReceiver) backplane.Backplane{
		"memory": func(r *callbackReceiver) backplane.Backplane {
			m := backplane.NewMemory(backplane.MemoryConfig{})
			r.bp = m
			if err := m.Start(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			return m
		},
		"redis": func(r *callbackReceiver) backplane.Backplane {
			srv := redistest.Start(t)
			b, err := backplane.NewRedis(backplane.RedisConfig{URL: srv.URL(), Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			r.bp = b
			if err := b.Start(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
	}
}

// TestReceiverCallsBack: the Receiver is called with no backplane lock
// held, so it may call the backplane back (Subscribe of a stream it
// receives, Unsubscribe, Ready, History). Before, Redis called it under its
// main mutex and Memory under its only one: each of these calls deadlocked.
func TestReceiverCallsBack(t *testing.T) {
	for name, start := range receiverBackplanes(t) {
		t.Run(name, func(t *testing.T) {
			r := newCallbackReceiver()
			bp := start(r)
			ctx := context.Background()
			s := backplane.Stream{Project: "p", Collection: "c"}
			if err := bp.Subscribe(ctx, s); err != nil {
				t.Fatal(err)
			}
			publishDone := make(chan error, 1)
			go func() {
				_, err := bp.Publish(ctx, []syncgate.Event{ev("p", "c", 1)})
				publishDone <- err
			}()
			select {
			case err := <-r.done:
				if err != nil {
					t.Fatalf("calls from inside Receive: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a Receiver calling back into the backplane deadlocked: Receive runs under a backplane lock")
			}
			if err := <-publishDone; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSlowReceiverDoesNotHoldTheBackplane: while a Receiver is inside
// Receive, the backplane still answers Ready and History and (Redis) takes
// publishes: delivery holds no lock the rest of the backplane needs.
func TestSlowReceiverDoesNotHoldTheBackplane(t *testing.T) {
	for name, start := range receiverBackplanes(t) {
		t.Run(name, func(t *testing.T) {
			r := newCallbackReceiver()
			r.hold = make(chan struct{})
			bp := start(r)
			ctx := context.Background()
			s := backplane.Stream{Project: "p", Collection: "c"}
			if err := bp.Subscribe(ctx, s); err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = bp.Publish(ctx, []syncgate.Event{ev("p", "c", 1)}) }()
			<-r.entered // Receive is now waiting on hold

			calls := make(chan error, 1)
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				var err error
				if c, ok := bp.(backplane.Checker); ok {
					err = c.Ready()
				}
				h, herr := bp.History(cctx, s, "", backplane.Page{})
				if herr == nil && h.Head == "" {
					herr = errors.New("no head")
				}
				err = errors.Join(err, herr)
				if name == "redis" {
					_, perr := bp.Publish(cctx, []syncgate.Event{ev("p", "other", 2)})
					err = errors.Join(err, perr)
				}
				calls <- err
			}()
			select {
			case err := <-calls:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the backplane waited for a Receiver inside Receive")
			}
			close(r.hold)
			if err := <-r.done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
