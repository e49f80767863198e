package hub

// smallSubs is how many subscriptions a session keeps in a slice before it
// indexes them in a map.
const smallSubs = 8

// subSet is a session's subscriptions by key. Most sessions hold a few,
// and a map costs ~440 bytes from its first entry, so they are kept in a
// slice (searched in order) until there are more than smallSubs. Guarded
// by the session's mu.
type subSet struct {
	list []*Subscription
	m    map[SubKey]*Subscription // nil while list is used
}

func (ss *subSet) get(k SubKey) *Subscription {
	if ss.m != nil {
		return ss.m[k]
	}
	for _, sub := range ss.list {
		if sub.key == k {
			return sub
		}
	}
	return nil
}

func (ss *subSet) len() int {
	if ss.m != nil {
		return len(ss.m)
	}
	return len(ss.list)
}

// put adds sub, whose key is not in the set.
func (ss *subSet) put(sub *Subscription) {
	if ss.m == nil && len(ss.list) < smallSubs {
		ss.list = append(ss.list, sub)
		return
	}
	if ss.m == nil {
		ss.m = make(map[SubKey]*Subscription, 2*smallSubs)
		for _, o := range ss.list {
			ss.m[o.key] = o
		}
		ss.list = nil
	}
	ss.m[sub.key] = sub
}

// remove drops sub if the set holds it under its key.
func (ss *subSet) remove(sub *Subscription) {
	if ss.m != nil {
		if ss.m[sub.key] == sub {
			delete(ss.m, sub.key)
		}
		return
	}
	for i, o := range ss.list {
		if o == sub {
			last := len(ss.list) - 1
			ss.list[i] = ss.list[last]
			ss.list[last] = nil
			ss.list = ss.list[:last]
			return
		}
	}
}

// all returns the subscriptions, in no particular order, in a new slice.
func (ss *subSet) all() []*Subscription {
	out := make([]*Subscription, 0, ss.len())
	if ss.m != nil {
		for _, sub := range ss.m {
			out = append(out, sub)
		}
		return out
	}
	return append(out, ss.list...)
}
