package main

import "testing"

func TestSeqChecker(t *testing.T) {
	tests := []struct {
		name     string
		arrivals []uint64
		expected uint64
		want     SeqResult
	}{
		{"in order", []uint64{1, 2, 3, 4}, 4, SeqResult{Received: 4}},
		{"nothing", nil, 3, SeqResult{Missing: 3}},
		{"tail lost", []uint64{1, 2}, 5, SeqResult{Received: 2, Missing: 3}},
		{"gap lost", []uint64{1, 4, 5}, 5, SeqResult{Received: 3, Missing: 2}},
		{"head lost", []uint64{3, 4}, 4, SeqResult{Received: 2, Missing: 2}},
		{"swap", []uint64{1, 3, 2, 4}, 4, SeqResult{Received: 4, Reordered: 1}},
		{"late fills the middle of a gap", []uint64{1, 6, 3, 2, 5}, 6, SeqResult{Received: 5, Reordered: 3, Missing: 1}},
		{"duplicate", []uint64{1, 2, 2, 3}, 3, SeqResult{Received: 4, Duplicates: 1}},
		{"late then duplicate", []uint64{2, 1, 1}, 2, SeqResult{Received: 3, Reordered: 1, Duplicates: 1}},
		{"beyond published", []uint64{1, 2, 3}, 2, SeqResult{Received: 3, Unexpected: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c SeqChecker
			for _, s := range tt.arrivals {
				c.Observe(s)
			}
			tt.want.Expected = tt.expected
			if got := c.Result(tt.expected); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSeqCheckerHoleOverflow(t *testing.T) {
	var c SeqChecker
	for s := uint64(1); s <= 2*(maxHoles+10); s += 2 { // every other event missing
		c.Observe(s)
	}
	r := c.Result(2 * (maxHoles + 10))
	if !r.Overflow {
		t.Fatal("overflow not reported")
	}
	if r.Missing != maxHoles+10 {
		t.Fatalf("missing %d, want %d: gaps past the remembered ones must still count", r.Missing, maxHoles+10)
	}
}
