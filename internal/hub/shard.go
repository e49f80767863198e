package hub

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/syncgate/syncgate/internal/backplane"
)

const numShards = 64

var shardSeed = maphash.MakeSeed()

// shard is one part of the subscription index. Each stream's subscriber
// slice is never modified in place: writers replace it, so a reader can use
// the slice it loaded after releasing the lock.
type shard struct {
	mu      sync.RWMutex
	streams map[backplane.Stream][]*subscription
}

func (h *Hub) shard(s backplane.Stream) *shard {
	var mh maphash.Hash
	mh.SetSeed(shardSeed)
	mh.WriteString(s.Project)
	mh.WriteByte(0)
	mh.WriteString(s.Collection)
	return &h.shards[mh.Sum64()%numShards]
}

func (sh *shard) subscribers(s backplane.Stream) []*subscription {
	sh.mu.RLock()
	subs := sh.streams[s]
	sh.mu.RUnlock()
	return subs
}

func (sh *shard) add(sub *subscription) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.streams[sub.stream]
	next := make([]*subscription, len(old), len(old)+1)
	copy(next, old)
	sh.streams[sub.stream] = append(next, sub)
}

func (sh *shard) remove(sub *subscription) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.streams[sub.stream]
	i := slices.Index(old, sub)
	if i < 0 {
		return
	}
	if len(old) == 1 {
		delete(sh.streams, sub.stream)
		return
	}
	next := make([]*subscription, 0, len(old)-1)
	next = append(next, old[:i]...)
	sh.streams[sub.stream] = append(next, old[i+1:]...)
}
