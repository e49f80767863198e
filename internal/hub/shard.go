package hub

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/syncgate/syncgate/internal/backplane"
)

const numShards = 64

var shardSeed = maphash.MakeSeed()

// shard is one part of the subscription index. A reader loads a stream's
// subscriber slice under the read lock and iterates it after releasing the
// lock, so the slots it can see are never written again: add appends past
// every length any reader holds (amortised O(1), no copy per join), and
// remove builds a new slice.
type shard struct {
	mu      sync.RWMutex
	streams map[backplane.Stream][]*Subscription
	encs    map[backplane.Stream]uint8 // the encodings a stream's subscribers use, a bit each
}

func (h *Hub) shard(s backplane.Stream) *shard {
	var mh maphash.Hash
	mh.SetSeed(shardSeed)
	mh.WriteString(s.Project)
	mh.WriteByte(0)
	mh.WriteString(s.Collection)
	return &h.shards[mh.Sum64()%numShards]
}

func (sh *shard) subscribers(s backplane.Stream) []*Subscription {
	sh.mu.RLock()
	subs := sh.streams[s]
	sh.mu.RUnlock()
	return subs
}

// subscribersEnc is subscribers with the encodings they use (bit per
// Encoding), so an event is encoded without a pass over them.
func (sh *shard) subscribersEnc(s backplane.Stream) ([]*Subscription, uint8) {
	sh.mu.RLock()
	subs, encs := sh.streams[s], sh.encs[s]
	sh.mu.RUnlock()
	return subs, encs
}

func (sh *shard) add(sub *Subscription) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Appending in place is safe: readers hold slices no longer than the
	// current one, and remove never leaves a shared array behind it.
	sh.streams[sub.key.Stream] = append(sh.streams[sub.key.Stream], sub)
	if sh.encs == nil {
		sh.encs = make(map[backplane.Stream]uint8)
	}
	sh.encs[sub.key.Stream] |= 1 << sub.enc
}

func (sh *shard) remove(sub *Subscription) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.streams[sub.key.Stream]
	i := slices.Index(old, sub)
	if i < 0 {
		return
	}
	if len(old) == 1 {
		delete(sh.streams, sub.key.Stream)
		delete(sh.encs, sub.key.Stream)
		return
	}
	next := make([]*Subscription, 0, len(old)-1)
	next = append(next, old[:i]...)
	next = append(next, old[i+1:]...)
	sh.streams[sub.key.Stream] = next
	var encs uint8
	for _, o := range next {
		encs |= 1 << o.enc
	}
	sh.encs[sub.key.Stream] = encs
}
