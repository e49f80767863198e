package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestParseExposition reads the unlabelled samples and the delivery
// latency buckets out of a gateway's /metrics, skipping other labelled
// series.
func TestParseExposition(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
go_goroutines 2011
syncgate_batch_size_events_bucket{le="1"} 3
syncgate_batch_size_events_sum 498000
syncgate_batch_size_events_count 198000
syncgate_delivery_latency_seconds_bucket{le="0.005"} 10
syncgate_delivery_latency_seconds_bucket{le="0.01"} 50
syncgate_delivery_latency_seconds_bucket{le="+Inf"} 100
syncgate_events_dropped_total{reason="audience"} 7
`
	m, lat, err := parseExposition(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 2011 || m["syncgate_batch_size_events_sum"] != 498000 || m["syncgate_batch_size_events_count"] != 198000 {
		t.Fatalf("samples %v", m)
	}
	if _, ok := m[`syncgate_events_dropped_total{reason="audience"}`]; ok || len(m) != 3 {
		t.Fatalf("labelled series read as samples: %v", m)
	}
	want := []Bucket{{.005, 10}, {.01, 50}, {math.MaxFloat64, 100}}
	if len(lat) != len(want) {
		t.Fatalf("buckets %v, want %v", lat, want)
	}
	for i := range want {
		if lat[i] != want[i] {
			t.Fatalf("buckets %v, want %v", lat, want)
		}
	}
	if _, err := json.Marshal(GatewaySample{Latency: lat}); err != nil {
		t.Fatalf("a sample with the +Inf bucket does not encode: %v", err)
	}
}

// TestBucketQuantile takes quantiles of what a histogram gained between
// two samples, as bucket upper bounds.
func TestBucketQuantile(t *testing.T) {
	from := []Bucket{{.005, 10}, {.01, 10}, {.05, 10}, {math.MaxFloat64, 10}}
	to := []Bucket{{.005, 10}, {.01, 60}, {.05, 109}, {math.MaxFloat64, 110}}
	for _, tc := range []struct {
		name     string
		from, to []Bucket
		q, want  float64
	}{
		{"median of the gain", from, to, .5, .01},
		{"p99 of the gain", from, to, .99, .05},
		{"tail past the last bound", from, to, .999, math.MaxFloat64},
		{"no earlier sample", nil, to, .05, .005},
		{"nothing gained", to, to, .5, 0},
		{"different bounds", from[:2], to, .5, 0},
		{"no buckets", nil, nil, .5, 0},
	} {
		if got := bucketQuantile(tc.from, tc.to, tc.q); got != tc.want {
			t.Errorf("%s: q%.3f = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}
