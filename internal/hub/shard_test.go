package hub

import (
	"sync"
	"testing"

	"github.com/syncgate/syncgate/internal/backplane"
)

// TestShardConcurrentReaders adds and removes subscribers while readers
// iterate the slices they loaded (run with -race): a reader's slots are
// never overwritten, and the index ends with exactly the survivors.
func TestShardConcurrentReaders(t *testing.T) {
	sh := &shard{streams: map[backplane.Stream][]*Subscription{}}
	s := backplane.Stream{Project: "p", Collection: "c"}
	subs := make([]*Subscription, 2000)
	for i := range subs {
		subs[i] = &Subscription{key: SubKey{Stream: s}}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				list := sh.subscribers(s)
				for i, sub := range list {
					if sub == nil || sub.key.Stream != s {
						t.Errorf("slot %d of %d holds %v", i, len(list), sub)
						return
					}
				}
			}
		}()
	}
	for i, sub := range subs {
		sh.add(sub)
		if i%3 == 2 {
			sh.remove(subs[i-1])
		}
	}
	close(stop)
	wg.Wait()
	got := sh.subscribers(s)
	if want := len(subs) - len(subs)/3; len(got) != want {
		t.Fatalf("%d subscribers left, want %d", len(got), want)
	}
	for _, sub := range got {
		for i := 1; i+1 < len(subs); i += 3 {
			if sub == subs[i] {
				t.Fatalf("removed subscriber %d still indexed", i)
			}
		}
	}
}
