package main

// maxHoles bounds how many separate gaps a SeqChecker remembers precisely;
// past it, late arrivals can no longer be told from duplicates and the
// checker says so (HolesOverflow).
const maxHoles = 1024

// SeqChecker follows one subscription's sequence numbers, which the load
// generator's publisher numbers 1, 2, 3, … per stream. The gateway
// promises offset order and no duplicates, so anything but seq == last+1 is
// an anomaly; it tells apart a gap (events skipped, possibly lost), a late
// event (arrived after a later one, filling a gap: reordered, not lost) and
// a duplicate. A SeqChecker is owned by one goroutine.
type SeqChecker struct {
	last       uint64 // highest sequence number seen
	received   uint64 // every event, anomalies included
	reordered  uint64 // arrived after a higher number, filling a gap
	duplicates uint64 // a number seen before
	overflow   bool
	untracked  uint64     // events in gaps past maxHoles, not yet arrived late
	holes      []seqRange // gaps not filled yet, ascending
}

type seqRange struct{ lo, hi uint64 } // inclusive

// Observe records the arrival of seq (≥ 1).
func (c *SeqChecker) Observe(seq uint64) {
	c.received++
	switch {
	case seq == c.last+1:
		c.last = seq
	case seq > c.last+1:
		if len(c.holes) < maxHoles {
			c.holes = append(c.holes, seqRange{c.last + 1, seq - 1})
		} else {
			c.overflow = true
			c.untracked += seq - c.last - 1
		}
		c.last = seq
	default:
		if c.fill(seq) {
			c.reordered++
		} else if c.overflow && c.untracked > 0 {
			// Cannot tell late from duplicate here; counted as late (and no
			// longer missing), and the overflow is reported.
			c.reordered++
			c.untracked--
		} else {
			c.duplicates++
		}
	}
}

// fill removes seq from the holes, reporting whether it was in one.
func (c *SeqChecker) fill(seq uint64) bool {
	for i, h := range c.holes {
		if seq < h.lo || seq > h.hi {
			continue
		}
		switch {
		case h.lo == h.hi:
			c.holes = append(c.holes[:i], c.holes[i+1:]...)
		case seq == h.lo:
			c.holes[i].lo++
		case seq == h.hi:
			c.holes[i].hi--
		default:
			c.holes = append(c.holes[:i+1], c.holes[i:]...)
			c.holes[i].hi = seq - 1
			c.holes[i+1].lo = seq + 1
		}
		return true
	}
	return false
}

// SeqResult is what one subscription saw against what was published.
type SeqResult struct {
	Expected   uint64
	Received   uint64
	Missing    uint64 // published and never received
	Reordered  uint64
	Duplicates uint64
	Unexpected uint64 // numbers above the last published one
	Overflow   bool
}

// Result compares what arrived with expected, the count of events published
// to the stream (numbered 1..expected).
func (c *SeqChecker) Result(expected uint64) SeqResult {
	r := SeqResult{Expected: expected, Received: c.received, Reordered: c.reordered, Duplicates: c.duplicates, Overflow: c.overflow,
		Missing: c.untracked}
	for _, h := range c.holes {
		lo, hi := h.lo, min(h.hi, expected)
		if lo <= hi {
			r.Missing += hi - lo + 1
		}
	}
	if c.last < expected {
		r.Missing += expected - c.last
	} else {
		r.Unexpected = c.last - expected
	}
	return r
}
