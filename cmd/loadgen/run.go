package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate/publisher"
)

// errAnomaly is returned after the report when events were lost, reordered
// or duplicated, or connections failed: a run that is not clean must not
// look clean to a script.
var errAnomaly = errors.New("the run was not clean (see the report)")

// runner is one load run.
type runner struct {
	cfg     *config
	stderr  io.Writer
	dialers dialers
	ctr     counters
	latency Histogram
	pub     pubStats
	phase   atomic.Pointer[string]

	mu        sync.Mutex
	clients   []*client
	dialErrs  map[string]int
	readersWG sync.WaitGroup
}

func (r *runner) setPhase(p string) { r.phase.Store(&p) }

// run executes the whole run and returns its report.
func (r *runner) run(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	rep := &Report{Label: cfg.Label, Config: reportConfig(cfg), Started: time.Now().UTC()}
	r.pub.seqs = make([]atomic.Uint64, cfg.streams()*cfg.lanes())
	r.dialErrs = map[string]int{}
	r.dialers = newDialers(cfg.SourceFirst, cfg.SourceIPs)

	limit, warn := raiseNoFile(uint64(cfg.Conns) + 256)
	rep.NoFileLimit = limit
	if warn != "" {
		rep.Warnings = append(rep.Warnings, warn)
		fmt.Fprintln(r.stderr, "loadgen: warning:", warn)
	}

	var pub []*publisher.Publisher
	if cfg.Duration > 0 {
		p, closePub, err := newPublishers(cfg)
		if err != nil {
			return nil, fmt.Errorf("publisher: %w", err)
		}
		defer closePub()
		pub = p
	}

	r.setPhase("start")
	stopProgress := r.startProgress()
	defer stopProgress()

	rep.Gateway.Baseline = r.sampleAll(ctx)

	// Connect.
	r.setPhase("connect")
	readCtx, stopReaders := context.WithCancel(context.Background())
	defer stopReaders()
	defer r.closeAll() // the readers read without a context: closing ends them
	t0 := time.Now()
	r.connect(ctx, readCtx)
	rep.Connections.Seconds = time.Since(t0).Seconds()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r.setPhase("settle")
	sleep(ctx, cfg.Settle)
	rep.Gateway.Idle = r.sampleAll(ctx)
	busy0, self0, t1 := machineBusy(), selfCPU(), time.Now()
	if pub == nil {
		rep.Notes = append(rep.Notes, r.profiles(ctx, 0, "idle")()...)
	}
	if cfg.Hold > 0 {
		r.setPhase("hold")
		sleep(ctx, cfg.Hold)
		rep.Gateway.Held = r.sampleAll(ctx)
	}

	// Publish, then wait for what is still on its way.
	var pubStart, pubEnd time.Time
	if pub != nil {
		r.setPhase("publish")
		pubStart = time.Now()
		waitProfiles := r.profiles(ctx, max(1, int(cfg.Duration.Seconds()*0.8)), "publish")
		r.publish(ctx, pub)
		pubEnd = time.Now()
		rep.Notes = append(rep.Notes, waitProfiles()...)
		r.setPhase("drain")
		r.drain(ctx)
	}
	rep.Gateway.End = r.sampleAll(ctx)
	m := &rep.Machine
	if m.Seconds = time.Since(t1).Seconds(); m.Seconds < 0.5 {
		m.Seconds = 0 // nothing ran: no CPU figures
	} else {
		m.BusyCores = (machineBusy() - busy0) / m.Seconds
		m.LoadgenCores = (selfCPU() - self0) / m.Seconds
		var gw float64
		for i := range rep.Gateway.End {
			if i < len(rep.Gateway.Idle) {
				gw += rep.Gateway.End[i].CPUSeconds - rep.Gateway.Idle[i].CPUSeconds
			}
		}
		m.GatewayCores = gw / m.Seconds
		m.OtherCores = max(0, m.BusyCores-m.LoadgenCores-m.GatewayCores)
	}

	// Stop reading and close every connection; then the clients' state is
	// ours to read.
	r.setPhase("close")
	disconnectsBeforeClose := r.ctr.disconnects.Load()
	stopReaders()
	clients := r.closeAll()
	r.readersWG.Wait()
	stopProgress()

	r.fill(rep, clients, pubStart, pubEnd, disconnectsBeforeClose)
	return rep, nil
}

// closeAll closes every client's connection, which ends its reader, and
// returns the clients.
func (r *runner) closeAll() []*client {
	r.mu.Lock()
	clients := r.clients
	r.mu.Unlock()
	for _, c := range clients {
		c.close()
	}
	return clients
}

// connect opens cfg.Conns connections at cfg.Ramp per second with at most
// cfg.DialConc in flight, and starts each one's reader once it is live.
func (r *runner) connect(ctx, readCtx context.Context) {
	cfg := r.cfg
	sem := make(chan struct{}, cfg.DialConc)
	var wg sync.WaitGroup
	start := time.Now()
	for n := 0; n < cfg.Conns && ctx.Err() == nil; n++ {
		if cfg.Ramp > 0 {
			if d := time.Until(start.Add(time.Duration(float64(n) / cfg.Ramp * float64(time.Second)))); d > 0 {
				sleep(ctx, d)
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := r.dial(ctx, n)
			if err != nil {
				r.ctr.failed.Add(1)
				r.mu.Lock()
				if len(r.dialErrs) < 20 {
					r.dialErrs[err.Error()]++
				} else {
					r.dialErrs["(other errors)"]++
				}
				r.mu.Unlock()
				return
			}
			r.ctr.established.Add(1)
			r.ctr.subscribed.Add(int64(c.live))
			r.mu.Lock()
			r.clients = append(r.clients, c)
			r.mu.Unlock()
			r.readersWG.Add(1)
			go func() {
				defer r.readersWG.Done()
				r.read(readCtx, c)
			}()
		}()
	}
	wg.Wait()
}

// expected is how many events the live subscriptions should receive in
// total, given what was published so far.
func (r *runner) expected() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, c := range r.clients {
		for _, s := range c.subs {
			for j := range s.seq {
				n += int64(r.pub.seqs[r.cfg.lane(s.stream, j)].Load())
			}
		}
	}
	return n
}

// drain waits until every expected event arrived, or cfg.Drain passed.
func (r *runner) drain(ctx context.Context) {
	want := r.expected()
	deadline := time.Now().Add(r.cfg.Drain)
	for r.ctr.received.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		sleep(ctx, 20*time.Millisecond)
	}
}

// startProgress prints a progress line every cfg.Progress; the returned
// function stops it and may be called more than once.
func (r *runner) startProgress() func() {
	if r.cfg.Progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.cfg.Progress)
		defer t.Stop()
		start := time.Now()
		var lastRecv, lastPub int64
		last := start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				recv, pub := r.ctr.received.Load(), r.pub.events.Load()
				dt := now.Sub(last).Seconds()
				line := fmt.Sprintf("[%5.1fs] %-7s conns %d/%d failed %d dropped %d | published %d (%.0f/s) | received %d (%.0f/s)",
					now.Sub(start).Seconds(), *r.phase.Load(), r.ctr.established.Load(), r.cfg.Conns, r.ctr.failed.Load(),
					r.ctr.disconnects.Load(), pub, float64(pub-lastPub)/dt, recv, float64(recv-lastRecv)/dt)
				for _, g := range r.sampleAll(context.Background()) {
					line += fmt.Sprintf(" | gw %d rss %.0f MiB cpu %.1fs", g.PID, float64(g.RSSBytes)/(1<<20), g.CPUSeconds)
				}
				fmt.Fprintln(r.stderr, line)
				lastRecv, lastPub, last = recv, pub, now
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// fill computes the report's results from the finished clients.
func (r *runner) fill(rep *Report, clients []*client, pubStart, pubEnd time.Time, disconnects int64) {
	cfg := r.cfg
	cr := &rep.Connections
	cr.Requested = cfg.Conns
	cr.Established = len(clients)
	cr.Failed = int(r.ctr.failed.Load())
	cr.DroppedDuringRun = int(disconnects)
	cr.Errors = r.dialErrs
	cr.CloseCodes = map[string]int{}

	d := &rep.Delivery
	for _, c := range clients {
		if c.errMsg != "" {
			cr.CloseCodes[fmt.Sprintf("%d %s", c.closed, c.errMsg)]++
		}
		d.ProtocolErrors += c.protoEr
		if c.protoMs != "" && d.FirstProtocolError == "" {
			d.FirstProtocolError = c.protoMs
		}
		lossy := false
		for _, s := range c.subs {
			for j := range s.seq {
				r.addResult(d, s.seq[j].Result(r.pub.seqs[cfg.lane(s.stream, j)].Load()), &lossy)
			}
		}
		if lossy {
			d.ClientsWithAnomalies++
		}
	}
	d.Frames = r.ctr.frames.Load()
	if d.Frames > 0 {
		d.EventsPerFrame = float64(d.Received) / float64(d.Frames)
	}
	if !pubStart.IsZero() {
		p := &rep.Publish
		p.Mode, p.TargetRate = cfg.Mode, cfg.Rate
		p.Events = r.pub.events.Load()
		p.Requests = r.pub.requests.Load()
		p.Failed = r.pub.failed.Load()
		p.Uncertain = r.pub.uncertain.Load()
		p.Seconds = pubEnd.Sub(pubStart).Seconds()
		p.EventsPerSec = float64(p.Events) / p.Seconds
		p.RequestLatency = r.pub.reqLat.Snapshot().Summary()
		if e := r.pub.firstErr.Load(); e != nil {
			p.FirstError = *e
		}
		if last := r.ctr.lastRecv.Load(); last > 0 {
			d.Seconds = time.Unix(0, last).Sub(pubStart).Seconds()
			d.PerSec = float64(d.Received) / d.Seconds
		}
	}
	rep.Latency = r.latency.Snapshot().Summary()

	g := &rep.Gateway
	if len(g.Idle) > 0 && len(g.Idle) == len(g.Baseline) && cr.Established > 0 {
		var rss, heap, stack, gor int64
		for i := range g.Idle {
			rss += g.Idle[i].RSSBytes - g.Baseline[i].RSSBytes
			heap += g.Idle[i].HeapInuse - g.Baseline[i].HeapInuse
			stack += g.Idle[i].StackInuse - g.Baseline[i].StackInuse
			gor += g.Idle[i].Goroutines - g.Baseline[i].Goroutines
		}
		n := float64(cr.Established)
		g.RSSPerConn = float64(rss) / n
		g.HeapPerConn = float64(heap) / n
		g.StackPerConn = float64(stack) / n
		g.GoroutinesPerConn = float64(gor) / n
	}
	if len(g.End) > 0 && len(g.End) == len(g.Idle) && d.Received > 0 {
		var cpu float64
		for i := range g.End {
			cpu += g.End[i].CPUSeconds - g.Idle[i].CPUSeconds
		}
		g.CPUSecondsRun = cpu
		g.CPUMicrosPerDelivery = cpu * 1e6 / float64(d.Received)
	}
	if len(g.End) > 0 && len(g.End) == len(g.Idle) {
		var events, frames float64
		var from, to []Bucket
		for i := range g.End {
			events += g.End[i].Events - g.Idle[i].Events
			frames += g.End[i].Frames - g.Idle[i].Frames
			from, to = addBuckets(from, g.Idle[i].Latency), addBuckets(to, g.End[i].Latency)
		}
		if frames > 0 {
			g.EventsPerFrame = events / frames
		}
		g.LatencyP50Max = boundMillis(bucketQuantile(from, to, .5))
		g.LatencyP99Max = boundMillis(bucketQuantile(from, to, .99))
	}

	// Verdict: every anomaly is named.
	if cr.Failed > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d connections failed", cr.Failed))
	}
	if cr.DroppedDuringRun > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d connections were closed by the gateway or the network during the run", cr.DroppedDuringRun))
	}
	for _, x := range []struct {
		n    uint64
		what string
	}{{d.Missing, "events lost"}, {d.Reordered, "events reordered"}, {d.Duplicates, "events duplicated"},
		{d.Unexpected, "events beyond the published sequence"}, {d.ProtocolErrors, "frames not understood"}} {
		if x.n > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	if rep.Publish.Failed > 0 || rep.Publish.Uncertain > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d events failed to publish and %d are uncertain (not counted as expected): %s",
			rep.Publish.Failed, rep.Publish.Uncertain, rep.Publish.FirstError))
	}
	if d.HolesOverflow {
		rep.Notes = append(rep.Notes, "more than 1024 gaps in one subscription: late events could not be told from duplicates")
	}
	sort.Strings(rep.Problems)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// addBuckets adds histogram b to sum, bucket by bucket (the gateways run
// one binary: the same bounds); a sum of nothing is b.
func addBuckets(sum, b []Bucket) []Bucket {
	if len(sum) == 0 {
		return append([]Bucket(nil), b...)
	}
	if len(b) != len(sum) {
		return sum
	}
	for i := range sum {
		sum[i].Count += b[i].Count
	}
	return sum
}

// addResult adds one lane's result to the delivery figures, setting lossy
// on any anomaly.
func (r *runner) addResult(d *DeliveryReport, res SeqResult, lossy *bool) {
	d.Expected += res.Expected
	d.Received += res.Received
	d.Missing += res.Missing
	d.Reordered += res.Reordered
	d.Duplicates += res.Duplicates
	d.Unexpected += res.Unexpected
	d.HolesOverflow = d.HolesOverflow || res.Overflow
	if res.Missing > 0 || res.Reordered > 0 || res.Duplicates > 0 || res.Unexpected > 0 {
		*lossy = true
	}
}

// boundMillis is a bucket bound in milliseconds, -1 for the last
// (unbounded) bucket.
func boundMillis(le float64) float64 {
	if le == math.MaxFloat64 {
		return -1
	}
	return le * 1000
}
