package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histSubBits sets the histogram's precision: each power-of-two range of
// values is split into 2^histSubBits linear buckets, so a recorded value is
// reported within 1/2^histSubBits (under 0.8%) of what it was.
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits
	histBuckets  = (64 - histSubBits + 1) * histSubCount
)

// Histogram is an HDR-style log-linear histogram of durations in
// microseconds: constant relative precision from 1 µs to hours in a fixed
// 58 KiB array. Record is safe for concurrent use (one atomic add); read it
// with Snapshot.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
}

// bucketOf maps a value to its bucket: values below histSubCount have a
// bucket each; above, the top histSubBits+1 significant bits select it.
func bucketOf(v uint64) int {
	if v < histSubCount {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [histSubCount, 2*histSubCount)
	return (shift+1)*histSubCount + int(v>>shift) - histSubCount
}

// bucketRange is the smallest and largest value that fall in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < histSubCount {
		return uint64(i), uint64(i)
	}
	shift := i/histSubCount - 1
	lo = uint64(i%histSubCount+histSubCount) << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one observation of d (negative durations count as zero).
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(uint64(us))].Add(1)
}

// Snapshot copies the counts for reading.
func (h *Histogram) Snapshot() *HistSnapshot {
	s := &HistSnapshot{}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			s.counts[i] = n
			s.total += n
		}
	}
	return s
}

// HistSnapshot is a point-in-time copy of a Histogram.
type HistSnapshot struct {
	counts [histBuckets]uint64
	total  uint64
}

// Count is the number of observations.
func (s *HistSnapshot) Count() uint64 { return s.total }

// Quantile returns the value at quantile q (0..1) in microseconds: the
// upper end of the bucket holding the ceil(q*count)-th smallest
// observation, so a reported p99 is never below the true one by more than
// the bucket width. Zero when empty.
func (s *HistSnapshot) Quantile(q float64) uint64 {
	if s.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, n := range s.counts {
		seen += n
		if seen >= rank {
			_, hi := bucketRange(i)
			return hi
		}
	}
	return s.Max()
}

// Max is the largest observation's bucket upper end, in microseconds.
func (s *HistSnapshot) Max() uint64 {
	for i := len(s.counts) - 1; i >= 0; i-- {
		if s.counts[i] > 0 {
			_, hi := bucketRange(i)
			return hi
		}
	}
	return 0
}

// Mean is the average observation in microseconds, each counted at its
// bucket's midpoint.
func (s *HistSnapshot) Mean() float64 {
	if s.total == 0 {
		return 0
	}
	var sum float64
	for i, n := range s.counts {
		if n > 0 {
			lo, hi := bucketRange(i)
			sum += float64(n) * (float64(lo) + float64(hi)) / 2
		}
	}
	return sum / float64(s.total)
}

// Latency is a histogram summary in milliseconds, for the report.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summary returns the usual quantiles in milliseconds.
func (s *HistSnapshot) Summary() Latency {
	ms := func(us uint64) float64 { return float64(us) / 1000 }
	return Latency{Count: s.total, P50: ms(s.Quantile(.5)), P90: ms(s.Quantile(.9)), P99: ms(s.Quantile(.99)),
		P999: ms(s.Quantile(.999)), Max: ms(s.Max()), Mean: s.Mean() / 1000}
}
