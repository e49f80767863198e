package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/wstest"
	"github.com/syncgate/syncgate/publisher"
)

// Concurrent callers lose nothing, keep each caller's order, and share
// requests.
func TestBatcherConcurrentCallersLoseNothing(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := subscriber(t, n, "p1", "rows")
	p, cnt := newPublisher(t, n.URL, wstest.Key, nil)
	b := p.NewBatcher(publisher.BatcherConfig{Window: 2 * time.Millisecond, QueueEvents: 500})
	const writers, each = 8, 750
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Enqueue(context.Background(), seqEvent("p1", "rows", w, i)); err != nil {
					errs <- err
					return
				}
				if p := b.Pending(); p > 500 {
					errs <- fmt.Errorf("%d events pending, QueueEvents is 500", p)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := c.Events(writers * each)
	next := make([]int, writers)
	for _, ev := range got {
		w, seq := seqOf(t, ev)
		if seq != next[w] {
			t.Fatalf("writer %d: got seq %d, want %d", w, seq, next[w])
		}
		next[w]++
	}
	if r := cnt.requests.Load(); r >= writers*each/10 {
		t.Errorf("%d requests for %d events: not coalesced", r, writers*each)
	}
	t.Logf("%d events in %d requests", writers*each, cnt.requests.Load())
	if err := b.Enqueue(context.Background(), seqEvent("p1", "rows", 0, 0)); !errors.Is(err, publisher.ErrClosed) {
		t.Errorf("Enqueue after Close: %v", err)
	}
}

// Publish through a Batcher returns each caller's own offsets.
func TestBatcherPublishReturnsOffsets(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := subscriber(t, n, "p1", "rows")
	p, _ := newPublisher(t, n.URL, wstest.Key, nil)
	b := p.NewBatcher(publisher.BatcherConfig{Window: 20 * time.Millisecond})
	defer b.Close(context.Background())
	const callers = 20
	offsets := make([][]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			offs, err := b.Publish(context.Background(), seqEvent("p1", "rows", i, 0), seqEvent("p1", "rows", i, 1))
			if err != nil {
				t.Error(err)
			}
			offsets[i] = offs
		}()
	}
	wg.Wait()
	byOffset := map[string][2]int{}
	for _, ev := range c.Events(2 * callers) {
		w, seq := seqOf(t, ev)
		byOffset[ev.Offset] = [2]int{w, seq}
	}
	for i, offs := range offsets {
		for j, off := range offs {
			if byOffset[off] != [2]int{i, j} {
				t.Errorf("caller %d event %d: offset %s delivered as %v", i, j, off, byOffset[off])
			}
		}
		if len(offs) != 2 {
			t.Errorf("caller %d: %d offsets", i, len(offs))
		}
	}
}

// The queue is bounded: while the gateway stalls, exactly QueueEvents are
// accepted; a blocking Enqueue waits and gives up with its context, having
// queued nothing; once the gateway answers, everything accepted arrives.
func TestBatcherQueueIsBounded(t *testing.T) {
	bp := newFlaky()
	bp.block = make(chan struct{})
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	c := subscriber(t, n, "p1", "rows")
	p, _ := newPublisher(t, n.URL, wstest.Key, nil)
	const limit = 50
	nb := p.NewBatcher(publisher.BatcherConfig{QueueEvents: limit, MaxBatch: 10, NonBlocking: true})
	accepted := 0
	for i := 0; ; i++ {
		err := nb.Enqueue(context.Background(), seqEvent("p1", "rows", 0, i))
		if errors.Is(err, publisher.ErrQueueFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
		if accepted > limit {
			t.Fatalf("accepted %d events with QueueEvents %d while the gateway is stalled", accepted, limit)
		}
	}
	if accepted != limit {
		t.Fatalf("accepted %d, want %d", accepted, limit)
	}
	if nb.Pending() != limit {
		t.Errorf("Pending %d, want %d", nb.Pending(), limit)
	}
	tooMany := make([]syncgate.Event, limit+1)
	for i := range tooMany {
		tooMany[i] = seqEvent("p1", "rows", 2, i)
	}
	if err := nb.Enqueue(context.Background(), tooMany...); !errors.Is(err, publisher.ErrQueueFull) {
		t.Errorf("a call larger than the queue: %v", err)
	}

	blocking := p.NewBatcher(publisher.BatcherConfig{QueueEvents: 1})
	if err := blocking.Enqueue(context.Background(), seqEvent("p1", "rows", 1, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := blocking.Enqueue(ctx, seqEvent("p1", "rows", 1, 99))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue on a full queue: %v, want it to wait and give up", err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- blocking.Enqueue(context.Background(), seqEvent("p1", "rows", 1, 1)) }()

	close(bp.block)
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	for _, b := range []*publisher.Batcher{nb, blocking} {
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := c.Events(limit + 2)
	seqs := map[int][]int{}
	for _, ev := range got {
		w, s := seqOf(t, ev)
		seqs[w] = append(seqs[w], s)
	}
	if len(seqs[0]) != limit || fmt.Sprint(seqs[1]) != "[0 1]" {
		t.Errorf("delivered %d of writer 0 (want %d) and %v of writer 1 (want [0 1]; 99 was refused)", len(seqs[0]), limit, seqs[1])
	}
}

// Failed requests are reported to OnError and by Flush, never dropped.
func TestBatcherReportsFailures(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	p, _ := newPublisher(t, n.URL, "wrong-key", nil)
	var mu sync.Mutex
	var failed []syncgate.Event
	b := p.NewBatcher(publisher.BatcherConfig{MaxBatch: 4, OnError: func(evs []syncgate.Event, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, evs...)
	}})
	for i := range 10 {
		if err := b.Enqueue(context.Background(), seqEvent("p1", "rows", 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Flush(context.Background())
	var be *publisher.BatchError
	var pe *publisher.Error
	if !errors.As(err, &be) || be.Failed != 10 || !errors.As(err, &pe) || pe.Code != "unauthorized" {
		t.Fatalf("Flush: %v, want 10 failed, unauthorized", err)
	}
	mu.Lock()
	if len(failed) != 10 {
		t.Errorf("OnError got %d events, want 10", len(failed))
	}
	for i, ev := range failed {
		if _, seq := seqOf(t, ev); seq != i {
			t.Errorf("OnError event %d has seq %d", i, seq)
		}
	}
	mu.Unlock()
	if err := b.Flush(context.Background()); err != nil {
		t.Errorf("second Flush reports again: %v", err)
	}
	if _, err := b.Publish(context.Background(), seqEvent("p1", "rows", 0, 10)); !errors.As(err, &pe) || pe.StatusCode != 401 {
		t.Errorf("Publish through the batcher: %v", err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("Close after Flush reported: %v", err)
	}
	if err := b.Close(context.Background()); !errors.Is(err, publisher.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// Close that runs out of time reports every event it could not publish.
func TestBatcherCloseDeadlineReportsUnsent(t *testing.T) {
	bp := newFlaky()
	bp.block = make(chan struct{})
	defer close(bp.block)
	n := wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	p, _ := newPublisher(t, n.URL, wstest.Key, nil)
	var reported int
	b := p.NewBatcher(publisher.BatcherConfig{MaxBatch: 5, OnError: func(evs []syncgate.Event, err error) { reported += len(evs) }})
	for i := range 12 {
		if err := b.Enqueue(context.Background(), seqEvent("p1", "rows", 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	waiter := make(chan error, 1)
	go func() {
		_, err := b.Publish(context.Background(), seqEvent("p1", "rows", 0, 12))
		waiter <- err
	}()
	// Wait until the Publish is queued and the first request is stuck in
	// the backplane.
	for b.Pending() != 13 || bp.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := b.Close(ctx)
	var be *publisher.BatchError
	if !errors.As(err, &be) || be.Failed != 12 {
		t.Fatalf("Close: %v, want 12 Enqueue'd events reported", err)
	}
	if reported != 13 {
		t.Errorf("OnError got %d events, want 13 (12 enqueued + 1 published)", reported)
	}
	if err := <-waiter; err == nil {
		t.Errorf("Publish caller was not told its event was not sent")
	}
}
