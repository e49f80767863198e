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

// pubStats counts publishing; seqs[lane] is the number of events of that
// lane published successfully, i.e. the highest sequence number its
// subscribers must receive. A lane is one publisher's share of a stream
// (config.lane): with fewer streams than publishers, several publishers
// share a stream, each numbering its own events.
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

// newPublishers returns the publishers for cfg.Mode: one into Redis, or
// one per HTTP publish URL; worker w uses the (w mod n)-th.
func newPublishers(cfg *config) ([]*publisher.Publisher, func(), error) {
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
		return []*publisher.Publisher{p}, func() { _ = p.Close(); _ = rdb.Close() }, nil
	}
	var pubs []*publisher.Publisher
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, u := range cfg.PublishURLs {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Publishers + 2, MaxConnsPerHost: cfg.Publishers + 2}}
		p, err := publisher.New(publisher.Config{URL: u, Key: cfg.Key, HTTPClient: hc, MaxRetries: -1})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		pubs = append(pubs, p)
		closers = append(closers, func() { _ = p.Close(); hc.CloseIdleConnections() })
	}
	return pubs, closeAll, nil
}

// publish runs cfg.Publishers workers for cfg.Duration. Worker w owns the
// streams k with k mod Publishers == w and sends them round-robin through
// pubs[w mod len(pubs)], so each stream's events go out one request after
// another, in sequence order, to one gateway; the total rate cfg.Rate is
// split evenly between the workers.
func (r *runner) publish(ctx context.Context, pubs []*publisher.Publisher) {
	cfg := r.cfg
	end := time.Now().Add(cfg.Duration)
	pad := padding(cfg)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Publishers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.publishWorker(ctx, pubs[w%len(pubs)], w, pad, end)
		}()
	}
	wg.Wait()
}

// publishWorker starts requests until end; a request in flight at end is
// waited for (cutting it off would leave its events uncertain).
func (r *runner) publishWorker(ctx context.Context, p *publisher.Publisher, w int, pad string, end time.Time) {
	cfg := r.cfg
	owned, j := cfg.owned(w)
	rate := cfg.Rate / float64(cfg.Publishers)
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
			seq := r.pub.seqs[cfg.lane(k, j)].Load() + 1
			for _, pk := range ks { // a stream twice in one batch: count up
				if pk == k {
					seq++
				}
			}
			ks = append(ks, k)
			docs[i] = appendDoc(docs[i][:0], seq, now.UnixNano(), j, cfg.lanes() > 1, pad)
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
			r.pub.seqs[cfg.lane(k, j)].Add(1)
		}
		r.pub.events.Add(int64(n))
	}
}

// appendDoc is the event document: its lane's sequence number, the
// stamp t (Unix nanoseconds, taken when the request carrying it is built,
// right before it is sent), the lane's number within its stream when the
// stream has several, and padding, in this order (handleFrame scans for
// it).
func appendDoc(b []byte, seq uint64, t int64, lane int, withLane bool, pad string) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	if withLane {
		b = append(b, `,"l":`...)
		b = strconv.AppendInt(b, int64(lane), 10)
	}
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
		DocumentID: "d1000000", Document: appendDoc(nil, 1000000, time.Now().UnixNano(), cfg.lanes()-1, cfg.lanes() > 1, ""),
		Timestamp: time.Now(), Offset: "0123456789abcdef-1000000"}
	b, _ := json.Marshal(ev)
	n := cfg.Size - len(b) - len(`,"pad":""`)
	if n <= 0 {
		return ""
	}
	return strings.Repeat("x", n)
}
