package backplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/syncgate/syncgate/internal/metrics"
)

// HistoryReaderConfig configures a HistoryReader.
type HistoryReaderConfig struct {
	// Budget bounds the bytes of history pages (their events' JSON as
	// stored) being read, or read and not yet released by the resumers
	// holding them, across the node; a read that does not fit waits its
	// turn. Default DefaultHistoryReadBudget (64 MiB). A page is never
	// larger than the budget.
	Budget int
	// Metrics may be nil.
	Metrics *metrics.Metrics
}

// Validate names a bad field and its value.
func (c HistoryReaderConfig) Validate() error {
	if c.Budget < 0 {
		return fmt.Errorf("HistoryReaderConfig.Budget=%d: must not be negative", c.Budget)
	}
	return nil
}

// HistoryReader is the node-wide gate between resuming clients and
// Backplane.History: at most Budget bytes of history are in flight at
// once, and resumers asking for the same page of the same stream at the
// same time (the mass reconnect after a node died) share one read. One
// HistoryReader serves every transport of a node.
type HistoryReader struct {
	bp     Backplane
	budget int
	m      *metrics.Metrics
	cfgErr error // cfg.Validate(): every Read fails with it

	mu       sync.Mutex
	inFlight int // bytes reserved by reads and held by their pages
	waiters  []*budgetWaiter
	calls    map[readKey]*readCall
}

type budgetWaiter struct {
	n     int
	ready chan struct{} // closed when the bytes are granted
}

type readKey struct {
	s     Stream
	since string
	page  Page
}

// readCall is one backplane read and the resumers sharing it.
type readCall struct {
	done chan struct{} // closed when h and err are set
	sent time.Time     // when the read was sent to the backplane
	h    History
	err  error
	refs int // resumers holding or awaiting the answer; guarded by mu
	held int // budget bytes the answer holds until refs is zero; guarded by mu
}

// NewHistoryReader returns a reader of bp's history. With a configuration
// that Validate refuses, every Read fails with that error.
func NewHistoryReader(bp Backplane, cfg HistoryReaderConfig) *HistoryReader {
	cfgErr := cfg.Validate()
	if cfg.Budget <= 0 {
		cfg.Budget = DefaultHistoryReadBudget
	}
	return &HistoryReader{bp: bp, budget: cfg.Budget, m: cfg.Metrics, cfgErr: cfgErr, calls: make(map[readKey]*readCall)}
}

// SharedPage is a page of history a HistoryReader read, possibly for
// several resumers at once.
type SharedPage struct {
	History
	// Fresh is true when the read was sent after the caller's
	// subscription was confirmed: then its Head bounds the caller's replay
	// (see Cursor). A shared read sent before may lack events published in
	// between, which live delivery does not bring either.
	Fresh bool

	release func()
}

// Release frees the page's events: they count against the budget until
// every resumer sharing the page released it. It may be called more than
// once.
func (p SharedPage) Release() {
	if p.release != nil {
		p.release()
	}
}

// Read returns one page of s after since, as Backplane.History does. The
// events are shared: callers must not modify them, and call Release once
// they no longer hold them. subscribed is when the caller's Subscribe of s
// returned. since empty (the head only) is never shared and costs no
// budget.
func (r *HistoryReader) Read(ctx context.Context, s Stream, since string, page Page, subscribed time.Time) (SharedPage, error) {
	if r.cfgErr != nil {
		return SharedPage{}, r.cfgErr
	}
	if since == "" {
		h, err := r.bp.History(ctx, s, "", page)
		return SharedPage{History: h, Fresh: true}, err
	}
	page = page.withDefaults()
	if page.MaxBytes > r.budget {
		page.MaxBytes = r.budget
	}
	key := readKey{s, since, page}
	for {
		r.mu.Lock()
		if c := r.calls[key]; c != nil {
			c.refs++
			r.mu.Unlock()
			h, err, again := r.await(ctx, c)
			if again {
				continue
			}
			if err != nil {
				return SharedPage{}, err
			}
			return SharedPage{History: h, Fresh: !c.sent.Before(subscribed), release: sync.OnceFunc(func() { r.release(c) })}, nil
		}
		c := &readCall{done: make(chan struct{}), refs: 1}
		r.calls[key] = c
		r.mu.Unlock()
		r.lead(ctx, key, c)
		if c.err != nil {
			r.release(c)
			return SharedPage{}, c.err
		}
		r.count(metrics.HistoryRead)
		return SharedPage{History: c.h, Fresh: true, release: sync.OnceFunc(func() { r.release(c) })}, nil
	}
}

// lead makes the read of call c: it waits for budget, reads, and keeps the
// bytes the page holds reserved.
func (r *HistoryReader) lead(ctx context.Context, key readKey, c *readCall) {
	reserve := key.page.MaxBytes
	if err := r.acquire(ctx, reserve); err != nil {
		c.err = err
		reserve = 0
	} else {
		c.sent = time.Now()
		c.h, c.err = r.bp.History(ctx, key.s, key.since, key.page)
	}
	r.mu.Lock()
	if c.err == nil {
		c.held = c.h.Bytes
	}
	// The page holds what it holds, which may differ from the
	// reservation (a single event larger than MaxBytes, or less).
	r.addLocked(c.held - reserve)
	if r.calls[key] == c {
		delete(r.calls, key)
	}
	r.mu.Unlock()
	close(c.done)
}

// await waits for the shared call c. again is true when the read failed
// only because the resumer that made it went away: the caller reads anew.
func (r *HistoryReader) await(ctx context.Context, c *readCall) (h History, err error, again bool) {
	select {
	case <-c.done:
	case <-ctx.Done():
		r.release(c)
		return History{}, ctx.Err(), false
	}
	if c.err != nil {
		r.release(c)
		if (errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			return History{}, nil, true
		}
		return History{}, c.err, false
	}
	r.count(metrics.HistoryShared)
	return c.h, nil, false
}

// release drops one resumer's hold on c; the last one returns the page's
// bytes to the budget.
func (r *HistoryReader) release(c *readCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.refs--
	if c.refs == 0 && c.held != 0 {
		r.addLocked(-c.held)
		c.held = 0
	}
}

// acquire reserves n bytes of the budget, waiting in line (first come,
// first served) until they fit. r.inFlight may exceed the budget only by
// pages larger than their reservation.
func (r *HistoryReader) acquire(ctx context.Context, n int) error {
	r.mu.Lock()
	if len(r.waiters) == 0 && (r.inFlight+n <= r.budget || r.inFlight <= 0) {
		r.addLocked(n)
		r.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	r.waiters = append(r.waiters, w)
	r.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		defer r.mu.Unlock()
		select {
		case <-w.ready:
			r.addLocked(-n)
		default:
			for i, x := range r.waiters {
				if x == w {
					r.waiters = append(r.waiters[:i], r.waiters[i+1:]...)
					break
				}
			}
			r.addLocked(0) // those behind it may fit now
		}
		return ctx.Err()
	}
}

// addLocked changes the bytes in flight by n and lets waiting reads in
// that now fit. r.mu is held.
func (r *HistoryReader) addLocked(n int) {
	r.inFlight += n
	if n <= 0 {
		r.grantLocked()
	}
	if r.m != nil {
		r.m.HistoryBytesInFlight.Set(float64(r.inFlight))
	}
}

// grantLocked grants waiting reservations in order while they fit. r.mu
// is held.
func (r *HistoryReader) grantLocked() {
	for len(r.waiters) > 0 {
		w := r.waiters[0]
		if r.inFlight+w.n > r.budget && r.inFlight > 0 {
			return
		}
		r.inFlight += w.n
		close(w.ready)
		r.waiters[0] = nil
		r.waiters = r.waiters[1:]
	}
}

func (r *HistoryReader) count(kind string) {
	if r.m != nil {
		r.m.HistoryReads.WithLabelValues(kind).Inc()
	}
}

// InFlight returns the bytes of history being read or held, for tests and
// diagnostics.
func (r *HistoryReader) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight
}
