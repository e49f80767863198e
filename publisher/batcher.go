package publisher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/syncgate/syncgate"
)

// BatcherConfig configures a Batcher. A zero field means its default.
type BatcherConfig struct {
	// Window is how long the oldest queued event waits for others to join
	// its request; default 5ms. A full request (MaxBatch events or
	// MaxRequestBytes) is sent at once.
	Window time.Duration
	// MaxBatch is the most events per request; default and maximum
	// MaxRequestEvents (1,000).
	MaxBatch int
	// QueueEvents bounds the events accepted but not yet published
	// (queued or in flight); default 10,000.
	QueueEvents int
	// QueueBytes bounds the encoded bytes of those events; default 16 MiB.
	// Together with QueueEvents it bounds the Batcher's memory.
	QueueBytes int
	// NonBlocking makes Enqueue and Publish fail at once with ErrQueueFull
	// when the queue has no room, instead of waiting for room (the default,
	// which applies backpressure to the callers).
	NonBlocking bool
	// RequestTimeout bounds each request; default 30s.
	RequestTimeout time.Duration
	// OnError, when set, receives the events of every request that failed
	// (after the Publisher's own safe retries), and the error, so that they
	// can be logged, stored or published again. It is called from the
	// Batcher's goroutine and must not call the Batcher's methods.
	OnError func(events []syncgate.Event, err error)
}

// Batcher publishes events asynchronously, coalescing the events that
// callers enqueue within a short window into one request. It keeps the
// order of events: they are published in the order they were accepted, one
// request at a time (a failed request does not stop later ones).
//
// Nothing is dropped silently: every event accepted by Enqueue is either
// published or reported as failed — to OnError, and in the error returned by
// the next Flush or by Close. Publish waits for its own events and returns
// their offsets or error.
//
// All methods are safe for concurrent use. Close must be called to stop the
// Batcher's goroutine.
type Batcher struct {
	p      *Publisher
	cfg    BatcherConfig
	cfgErr error           // cfg.Validate(): Enqueue and Publish fail with it
	ctx    context.Context // requests; canceled when Close gives up
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: work, flush or close for the sender
	exited chan struct{}

	mu       sync.Mutex // guards the fields below
	queue    []item
	events   int // accepted, not yet finished (queued or in flight)
	bytes    int
	accepted uint64 // events ever accepted
	finished uint64 // events ever finished (published or failed)
	flushing int
	closed   bool
	space    chan struct{} // closed when room frees or on close
	progress chan struct{} // closed when finished grows
	failed   int           // Enqueue'd events failed since the last Flush
	errs     []error       // their first distinct errors
}

type item struct {
	enc Encoded
	at  time.Time
	w   *waiter // nil for Enqueue
	idx int     // index in w.offsets
}

type waiter struct {
	offsets   []string
	err       error
	remaining int
	done      chan struct{}
}

// Validate names the first field that cannot be used, and its value.
func (c BatcherConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Window", c.Window}, {"RequestTimeout", c.RequestTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("publisher: BatcherConfig.%s=%s: must not be negative", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"MaxBatch", c.MaxBatch}, {"QueueEvents", c.QueueEvents}, {"QueueBytes", c.QueueBytes}} {
		if n.v < 0 {
			return fmt.Errorf("publisher: BatcherConfig.%s=%d: must not be negative", n.name, n.v)
		}
	}
	if c.MaxBatch > MaxRequestEvents {
		return fmt.Errorf("publisher: BatcherConfig.MaxBatch=%d: at most %d", c.MaxBatch, MaxRequestEvents)
	}
	return nil
}

// NewBatcher starts a Batcher publishing through p. With a configuration
// that Validate refuses, Enqueue and Publish fail with that error.
func (p *Publisher) NewBatcher(cfg BatcherConfig) *Batcher {
	cfgErr := cfg.Validate()
	if cfg.Window <= 0 {
		cfg.Window = 5 * time.Millisecond
	}
	if cfg.MaxBatch <= 0 || cfg.MaxBatch > MaxRequestEvents {
		cfg.MaxBatch = MaxRequestEvents
	}
	if cfg.QueueEvents <= 0 {
		cfg.QueueEvents = 10000
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 16 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		p: p, cfg: cfg, cfgErr: cfgErr, ctx: ctx, cancel: cancel,
		wake:     make(chan struct{}, 1),
		exited:   make(chan struct{}),
		space:    make(chan struct{}),
		progress: make(chan struct{}),
	}
	go b.run()
	return b
}

// Enqueue validates events (an invalid one refuses the whole call, with the
// gateway's message, and queues nothing) and queues them for publishing. It
// returns once they are queued: when the queue is full it waits for room
// until ctx ends, or fails with ErrQueueFull if NonBlocking is set. A call
// larger than QueueEvents or QueueBytes fails with ErrQueueFull.
func (b *Batcher) Enqueue(ctx context.Context, events ...syncgate.Event) error {
	_, err := b.add(ctx, events, false)
	return err
}

// Publish queues events like Enqueue and waits until they are published,
// returning their offsets. Concurrent callers' events share requests. On a
// failed request the error is returned, with the offsets of those of the
// events that went out in an earlier request filled in and the others
// empty. If ctx ends while waiting, the events stay queued and may still be
// published.
func (b *Batcher) Publish(ctx context.Context, events ...syncgate.Event) ([]string, error) {
	w, err := b.add(ctx, events, true)
	if err != nil || w == nil {
		return nil, err
	}
	select {
	case <-w.done:
		return w.offsets, w.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for publish (the events stay queued): %w", ctx.Err())
	}
}

func (b *Batcher) add(ctx context.Context, events []syncgate.Event, wait bool) (*waiter, error) {
	if b.cfgErr != nil {
		return nil, b.cfgErr
	}
	if len(events) == 0 {
		return nil, nil
	}
	now := time.Now()
	enc, err := encodeAll(events, now)
	if err != nil {
		return nil, err
	}
	size := 0
	for _, e := range enc {
		size += len(e.JSON)
	}
	if len(enc) > b.cfg.QueueEvents || size > b.cfg.QueueBytes {
		return nil, fmt.Errorf("%w: a call of %d events, %d bytes exceeds the queue's %d events, %d bytes",
			ErrQueueFull, len(enc), size, b.cfg.QueueEvents, b.cfg.QueueBytes)
	}
	var w *waiter
	if wait {
		w = &waiter{offsets: make([]string, len(enc)), remaining: len(enc), done: make(chan struct{})}
	}
	b.mu.Lock()
	for !b.closed && (b.events+len(enc) > b.cfg.QueueEvents || b.bytes+size > b.cfg.QueueBytes) {
		if b.cfg.NonBlocking {
			b.mu.Unlock()
			return nil, ErrQueueFull
		}
		space := b.space
		b.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for room in the batcher queue (nothing was queued): %w", ctx.Err())
		}
		b.mu.Lock()
	}
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	wasEmpty := len(b.queue) == 0
	for i, e := range enc {
		b.queue = append(b.queue, item{enc: e, at: now, w: w, idx: i})
	}
	b.events += len(enc)
	b.bytes += size
	b.accepted += uint64(len(enc))
	full := len(b.queue) >= b.cfg.MaxBatch
	b.mu.Unlock()
	if wasEmpty || full {
		b.poke()
	}
	return w, nil
}

func (b *Batcher) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Pending returns the number of events accepted and not yet published or
// failed (queued or in flight); it never exceeds QueueEvents.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events
}

// Flush sends every event queued before the call without waiting out the
// window, and waits until each is published or has failed. It returns a
// *BatchError for Enqueue'd events that failed since the previous Flush
// (Publish callers get their own errors), or ctx's error if it ends first.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	target := b.accepted
	b.flushing++
	b.mu.Unlock()
	b.poke()
	defer func() {
		b.mu.Lock()
		b.flushing--
		b.mu.Unlock()
	}()
	for {
		b.mu.Lock()
		if b.finished >= target {
			err := b.takeErrs()
			b.mu.Unlock()
			return err
		}
		progress := b.progress
		b.mu.Unlock()
		select {
		case <-progress:
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
}

// Close stops accepting events (Enqueue and Publish then return ErrClosed),
// publishes everything queued and stops the Batcher's goroutine. If ctx
// ends first, the request in flight is abandoned and the events not
// published are reported — to OnError, to their Publish callers, and in the
// returned *BatchError — never dropped silently. Close returns the failures
// since the last Flush.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	already := b.closed
	if !already {
		b.closed = true
		close(b.space) // wake blocked Enqueue callers; they see closed
	}
	b.mu.Unlock()
	if already {
		<-b.exited
		return ErrClosed
	}
	b.poke()
	select {
	case <-b.exited:
	case <-ctx.Done():
		b.cancel()
		<-b.exited
	}
	b.cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.takeErrs()
}

// takeErrs returns and resets the recorded failures. b.mu is held.
func (b *Batcher) takeErrs() error {
	if b.failed == 0 {
		return nil
	}
	err := &BatchError{Failed: b.failed, Errs: b.errs}
	b.failed, b.errs = 0, nil
	return err
}

// BatchError reports events a Batcher accepted but could not publish.
type BatchError struct {
	// Failed is the number of events not published.
	Failed int
	// Errs are the distinct causes (at most 10), e.g. *Error values.
	Errs []error
}

func (e *BatchError) Error() string {
	if len(e.Errs) == 0 {
		return fmt.Sprintf("syncgate batcher: %d events not published", e.Failed)
	}
	return fmt.Sprintf("syncgate batcher: %d events not published: %v", e.Failed, e.Errs[0])
}

// Unwrap returns the causes, for errors.Is and errors.As.
func (e *BatchError) Unwrap() []error { return e.Errs }

// errNotSent is the cause reported for events still queued when Close gave up.
var errNotSent = fmt.Errorf("%w before the events were sent", ErrClosed)

// run is the Batcher's only sender: it takes requests off the queue in
// order and publishes them one at a time.
func (b *Batcher) run() {
	defer close(b.exited)
	var timer *time.Timer
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return
			}
			<-b.wake
			continue
		}
		if b.ctx.Err() != nil { // Close gave up: fail what is left
			batch := b.queue
			b.queue = nil
			b.mu.Unlock()
			b.finish(batch, nil, errNotSent)
			continue
		}
		wait := time.Until(b.queue[0].at.Add(b.cfg.Window))
		urgent := b.closed || b.flushing > 0 || len(b.queue) >= b.cfg.MaxBatch
		if wait > 0 && !urgent {
			b.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-b.wake:
				timer.Stop()
			}
			continue
		}
		n := min(requestSize(encodedOf(b.queue, b.cfg.MaxBatch)), b.cfg.MaxBatch)
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()

		enc := make([]Encoded, n)
		for i, it := range batch {
			enc[i] = it.enc
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.RequestTimeout)
		offsets, err := b.p.send(ctx, enc)
		cancel()
		b.finish(batch, offsets, err)
	}
}

// encodedOf returns the encoded events of up to max queued items; only
// their sizes matter to requestSize.
func encodedOf(q []item, max int) []Encoded {
	n := min(len(q), max)
	enc := make([]Encoded, n)
	for i := range n {
		enc[i] = q[i].enc
	}
	return enc
}

// finish records the outcome of a request: offsets on success, err for
// every event otherwise.
func (b *Batcher) finish(batch []item, offsets []string, err error) {
	var failedEvents []syncgate.Event
	if err != nil && b.cfg.OnError != nil {
		failedEvents = make([]syncgate.Event, len(batch))
		for i, it := range batch {
			failedEvents[i] = *it.enc.Event
		}
	}
	size := 0
	fireAndForget := 0
	for i, it := range batch {
		size += len(it.enc.JSON)
		if it.w == nil {
			fireAndForget++
			continue
		}
		if err != nil {
			if it.w.err == nil {
				it.w.err = err
			}
		} else {
			it.w.offsets[it.idx] = offsets[i]
		}
		it.w.remaining--
		if it.w.remaining == 0 {
			close(it.w.done)
		}
	}
	if failedEvents != nil {
		b.cfg.OnError(failedEvents, err)
	}
	b.mu.Lock()
	b.events -= len(batch)
	b.bytes -= size
	b.finished += uint64(len(batch))
	if err != nil && fireAndForget > 0 {
		b.failed += fireAndForget
		if len(b.errs) < 10 && (len(b.errs) == 0 || b.errs[len(b.errs)-1].Error() != err.Error()) {
			b.errs = append(b.errs, err)
		}
	}
	if !b.closed {
		close(b.space)
		b.space = make(chan struct{})
	}
	close(b.progress)
	b.progress = make(chan struct{})
	b.mu.Unlock()
}
