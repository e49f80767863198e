package hub

import (
	"strconv"
	"testing"

	"github.com/syncgate/syncgate/internal/backplane"
)

// TestSubSet: get, put, remove and all agree with a map, below and past
// the point where the set moves from its slice to a map.
func TestSubSet(t *testing.T) {
	for _, n := range []int{1, smallSubs, smallSubs + 1, 3 * smallSubs} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			var ss subSet
			want := map[SubKey]*Subscription{}
			key := func(i int) SubKey {
				return SubKey{Stream: backplane.Stream{Project: "p", Collection: "c" + strconv.Itoa(i)}}
			}
			for i := range n {
				sub := &Subscription{key: key(i)}
				ss.put(sub)
				want[sub.key] = sub
			}
			ss.remove(&Subscription{key: key(0)}) // another subscription under a held key: kept
			for i := 0; i < n; i += 2 {
				ss.remove(want[key(i)])
				delete(want, key(i))
			}
			if ss.len() != len(want) || len(ss.all()) != len(want) {
				t.Fatalf("len %d, all %d, want %d", ss.len(), len(ss.all()), len(want))
			}
			for i := range n + 1 {
				if got := ss.get(key(i)); got != want[key(i)] {
					t.Fatalf("get(%d) = %p, want %p", i, got, want[key(i)])
				}
			}
			for _, sub := range ss.all() {
				if want[sub.key] != sub {
					t.Fatalf("all holds %v, not in the set", sub.key)
				}
			}
		})
	}
}
