package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/publisher"
	"github.com/syncgate/syncgate/publisher/redispub"
)

// pubStats counts publishing; seqs[k] is the number of events of stream k
// published successfully, i.e. the highest sequence number its
// subscribers must receive.
type pubStats struct {
	seqs      []atomic.Uint64
	events    atomic.Int64
	requests  atomic.Int64
	failed    atomic.Int64 // events in requests that failed and certainly were not published
	uncertain atomic.Int64 // events in requests with no answer: maybe published
	firstErr  atomic.Pointer[string]
	reqLat    Histogram // publish call latency
}

func (p *pubStats) fail(err error, n int) {
	if errors.Is(err, publisher.ErrUncertain) {
		p.uncertain.Add(int64(n))
	} else {
		p.failed.Add(int64(n))
	}
	s := err.Error()
	p.firstErr.CompareAndSwap(nil, &s)
}

// newPublisher returns the publisher for cfg.Mode.
func newPublisher(cfg *config) (*publisher.Publisher, func(), error) {
	if cfg.Mode == "redis" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, err
		}
		opts.MaxRetries = -1 // a resent command could publish twice
		opts.PoolSize = cfg.Publishers + 2
		rdb := redis.NewClient(opts)
		p, err := redispub.New(rdb, redispub.Config{MaxRetries: -1})
		if err != nil {
			_ = rdb.Close()
			return nil, nil, err
		}
		return p, func() { _ = p.Close(); _ = rdb.Close() }, nil
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Publishers + 2, MaxConnsPerHost: cfg.Publishers + 2}}
	p, err := publisher.New(publisher.Config{URL: cfg.PublishURL, Key: cfg.Key, HTTPClient: hc, MaxRetries: -1})
	if err != nil {
		return nil, nil, err
	}
	return p, func() { _ = p.Close(); hc.CloseIdleConnections() }, nil
}

// publish runs cfg.Publishers workers for cfg.Duration. Worker w owns the
// streams k with k mod Publishers == w and sends them round-robin, so each
// stream's events go out one request after another, in sequence order;
// the total rate cfg.Rate is split evenly between the workers.
func (r *runner) publish(ctx context.Context, p *publisher.Publisher) {
	cfg := r.cfg
	end := time.Now().Add(cfg.Duration)
	pad := padding(cfg)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Publishers && w < cfg.streams(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.publishWorker(ctx, p, w, pad, end)
		}()
	}
	wg.Wait()
}

// publishWorker starts requests until end; a request in flight at end is
// waited for (cutting it off would leave its events uncertain).
func (r *runner) publishWorker(ctx context.Context, p *publisher.Publisher, w int, pad string, end time.Time) {
	cfg := r.cfg
	var owned []int
	for k := w; k < cfg.streams(); k += cfg.Publishers {
		owned = append(owned, k)
	}
	workers := min(cfg.Publishers, cfg.streams())
	rate := cfg.Rate / float64(workers)
	batch := 1
	if cfg.Mode != "http" {
		batch = cfg.Batch
	}
	start := time.Now()
	lastSend := start
	sent := 0 // events attempted by this worker
	next := 0 // index into owned
	evs := make([]syncgate.Event, 0, batch)
	docs := make([][]byte, batch)
	ks := make([]int, 0, batch)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil && time.Now().Before(end) {
		n := batch
		if rate > 0 {
			due := int(rate*time.Since(start).Seconds()) - sent
			if due <= 0 || (batch > 1 && cfg.Interval > 0 && due < batch && time.Since(lastSend) < cfg.Interval) {
				wait := time.Duration(float64(sent+1)/rate*float64(time.Second)) - time.Since(start)
				if batch > 1 && cfg.Interval > 0 {
					wait = max(wait, cfg.Interval-time.Since(lastSend))
				}
				timer.Reset(min(max(wait, 200*time.Microsecond), time.Until(end)+time.Millisecond))
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				continue
			}
			n = min(n, due)
		}
		// Build n events, each the next of its stream.
		evs, ks = evs[:0], ks[:0]
		now := time.Now()
		for i := 0; i < n; i++ {
			k := owned[next]
			next = (next + 1) % len(owned)
			seq := r.pub.seqs[k].Load() + 1
			for _, pk := range ks { // a stream twice in one batch: count up
				if pk == k {
					seq++
				}
			}
			ks = append(ks, k)
			docs[i] = appendDoc(docs[i][:0], seq, now.UnixNano(), pad)
			project, collection := cfg.stream(k)
			evs = append(evs, syncgate.Event{Type: syncgate.TypeDocumentUpdated, Project: project, Collection: collection,
				DocumentID: "d" + strconv.FormatUint(seq, 10), Document: docs[i], Timestamp: now})
		}
		sent += n
		t0 := time.Now()
		lastSend = t0
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := p.Publish(rctx, evs...)
		cancel()
		r.pub.reqLat.Record(time.Since(t0))
		r.pub.requests.Add(1)
		if err != nil {
			r.pub.fail(err, n)
			continue // the sequence numbers are reused: these events were not published
		}
		for _, k := range ks {
			r.pub.seqs[k].Add(1)
		}
		r.pub.events.Add(int64(n))
	}
}

// appendDoc is the event document: its stream sequence number, the publish
// time in Unix nanoseconds and padding, in this order (handleFrame scans
// for it).
func appendDoc(b []byte, seq uint64, t int64, pad string) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	if pad != "" {
		b = append(b, `,"pad":"`...)
		b = append(b, pad...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// padding is what brings an event, as the gateway delivers it (offset and
// timestamp included), to about cfg.Size bytes.
func padding(cfg *config) string {
	project, collection := cfg.stream(cfg.streams() - 1)
	ev := syncgate.Event{Type: syncgate.TypeDocumentUpdated, Project: project, Collection: collection,
		DocumentID: "d1000000", Document: appendDoc(nil, 1000000, time.Now().UnixNano(), ""),
		Timestamp: time.Now(), Offset: "0123456789abcdef-1000000"}
	b, _ := json.Marshal(ev)
	n := cfg.Size - len(b) - len(`,"pad":""`)
	if n <= 0 {
		return ""
	}
	return strings.Repeat("x", n)
}
