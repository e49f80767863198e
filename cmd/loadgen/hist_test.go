package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 12345, 1 << 20, 1<<40 + 12345, 1<<63 + 5} {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if v >= histSubCount && float64(hi-lo+1)/float64(lo) > 1.0/histSubCount+1e-9 {
			t.Errorf("bucket %d = [%d, %d] wider than 1/%d of its value", i, lo, hi, histSubCount)
		}
	}
	// Buckets tile the value range without gaps or overlaps.
	for i := 1; i < bucketOf(1<<30); i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, prevHi)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(rng.ExpFloat64() * 5000) // µs, mean 5 ms
		h.Record(time.Duration(vals[i]) * time.Microsecond)
	}
	slices.Sort(vals)
	s := h.Snapshot()
	if s.Count() != uint64(len(vals)) {
		t.Fatalf("count %d, want %d", s.Count(), len(vals))
	}
	for _, q := range []float64{.5, .9, .99, .999, 1} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := s.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/histSubCount+1 {
			t.Errorf("q%.3f = %d µs, exact %d µs: off by more than one bucket", q, got, exact)
		}
	}
	if s.Max() < vals[len(vals)-1] {
		t.Errorf("max %d below the largest value %d", s.Max(), vals[len(vals)-1])
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if s := h.Snapshot(); s.Quantile(.99) != 0 || s.Max() != 0 || s.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-time.Second) // clock skew: counted as zero, not dropped
	h.Record(3 * time.Millisecond)
	s := h.Snapshot()
	if s.Count() != 2 || s.Quantile(.5) != 0 || s.Quantile(1) < 3000 {
		t.Fatalf("count %d p50 %d p100 %d", s.Count(), s.Quantile(.5), s.Quantile(1))
	}
	l := s.Summary()
	if l.Max < 3 || l.Max > 3.1 {
		t.Fatalf("summary max %.3f ms, want about 3", l.Max)
	}
}
