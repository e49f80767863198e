package backplane_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
)

func pos(n int) string { return fmt.Sprintf("%016X%08X", n, 0) }

// TestPublishAt republishes overlapping batches, as a restarted change
// capture does, and expects every event once per project, in order.
func TestPublishAt(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) backplane.Backplane
	}{
		{"memory", func(t *testing.T) backplane.Backplane {
			m := backplane.NewMemory(backplane.MemoryConfig{})
			t.Cleanup(func() { _ = m.Close() })
			return m
		}},
		{"redis", func(t *testing.T) backplane.Backplane {
			bp, _ := startRedisBP(t, redistest.Start(t).URL(), nil)
			return bp
		}},
		{"cluster", func(t *testing.T) backplane.Backplane {
			bp, _ := startRedisBP(t, redistest.StartCluster(t).URL(), nil)
			return bp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bp := tc.open(t)
			pp := bp.(backplane.PositionPublisher)
			ctx := context.Background()
			batch := func(from, to int) ([]syncgate.Event, []string) {
				var evs []syncgate.Event
				var ps []string
				for i := from; i <= to; i++ {
					evs = append(evs, ev([]string{"pa", "pb"}[i%2], "c", i))
					ps = append(ps, pos(i))
				}
				return evs, ps
			}
			evs, ps := batch(1, 4)
			off, err := pp.PublishAt(ctx, "slot1", evs, ps)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range off {
				if o == "" {
					t.Fatalf("event %d of a fresh source was skipped", i)
				}
			}
			// Restarted: 2..7 again, in one batch; 2..4 were published.
			evs, ps = batch(2, 7)
			off, err = pp.PublishAt(ctx, "slot1", evs, ps)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range off {
				if skipped, want := o == "", i < 3; skipped != want {
					t.Fatalf("event at position %d: skipped=%v, want %v", i+2, skipped, want)
				}
			}
			// Another source has its own positions.
			evs, ps = batch(1, 1)
			if off, err = pp.PublishAt(ctx, "slot2", evs, ps); err != nil || off[0] == "" {
				t.Fatalf("another source's first event: %v %v", off, err)
			}
			for _, p := range []string{"pa", "pb"} {
				h, err := bp.History(ctx, backplane.Stream{Project: p, Collection: "c"}, startOf(t, bp, p), backplane.Page{})
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, e := range h.Events {
					got = append(got, seqOf(t, e))
				}
				want := map[string]string{"pa": "[2 4 6]", "pb": "[1 3 5 7 1]"}[p] // the last from slot2
				if fmt.Sprint(got) != want {
					t.Fatalf("project %s history: %v, want %s", p, got, want)
				}
			}
			_, err = pp.PublishAt(ctx, "slot1", evs, []string{"xyz"})
			if !errors.Is(err, backplane.ErrBadPosition) {
				t.Fatalf("bad position: %v, want ErrBadPosition", err)
			}
		})
	}
}

// startOf returns the offset before every event of p/c: its epoch with
// the smallest position.
func startOf(t *testing.T, bp backplane.Backplane, p string) string {
	t.Helper()
	h, err := bp.History(context.Background(), backplane.Stream{Project: p, Collection: "c"}, "", backplane.Page{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := backplane.ParseOffset(h.Head)
	if err != nil {
		t.Fatal(err)
	}
	o.Hi, o.Lo = 0, 0
	return o.String()
}
