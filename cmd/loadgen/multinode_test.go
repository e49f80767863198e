package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestRunTwoGatewaysThroughRedis drives two gateways sharing one Redis:
// the connections are spread over both, and four publishers share the
// one stream (a lane each), two posting to each gateway. Every subscriber
// must receive every lane's events exactly once, in order, whichever
// gateway it is on and whichever gateway took the publish.
func TestRunTwoGatewaysThroughRedis(t *testing.T) {
	srv := redistest.Start(t)
	var urls []string
	for range 2 {
		bp, err := backplane.NewRedis(backplane.RedisConfig{URL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, wstest.StartNode(t, wstest.NodeConfig{Backplane: bp}).URL)
	}
	out := filepath.Join(t.TempDir(), "report.json")
	const conns, publishers = 20, 4
	args := []string{
		"-url", strings.Join(urls, ","), "-publish-url", "all", "-secret", wstest.Secret, "-key", wstest.Key,
		"-conns", "20", "-rate", "400", "-duration", "1s", "-publish", "http-batch", "-batch", "5",
		"-publishers", "4", "-settle", "0", "-progress", "0", "-drain", "10s", "-json", out,
	}
	rep, _ := runReport(t, args, out, 30*time.Second)
	c, d, p := rep.Connections, rep.Delivery, rep.Publish
	if c.Established != conns || c.Failed != 0 {
		t.Fatalf("connections %+v", c)
	}
	if p.Events < publishers || p.Failed != 0 || p.Uncertain != 0 {
		t.Fatalf("published %+v", p)
	}
	if want := uint64(p.Events) * conns; d.Expected != want || d.Received != want {
		t.Fatalf("expected %d received %d, want both %d (every subscriber gets every lane)", d.Expected, d.Received, want)
	}
	if d.Missing != 0 || d.Reordered != 0 || d.Duplicates != 0 || d.Unexpected != 0 || d.ProtocolErrors != 0 {
		t.Fatalf("delivery anomalies: %+v", d)
	}
}

// TestLanes: with fewer streams than publishers, the publishers share
// the streams, each in a lane of its own; with more, each owns streams.
func TestLanes(t *testing.T) {
	for _, tc := range []struct {
		streams, publishers, lanes int
		owned                      [][]int // per publisher
		lane                       []int
	}{
		{1, 4, 4, [][]int{{0}, {0}, {0}, {0}}, []int{0, 1, 2, 3}},
		{3, 4, 2, [][]int{{0}, {1}, {2}, {0}}, []int{0, 0, 0, 1}},
		{5, 2, 1, [][]int{{0, 2, 4}, {1, 3}}, []int{0, 0}},
	} {
		c := &config{Projects: 1, Collections: tc.streams, Publishers: tc.publishers}
		if got := c.lanes(); got != tc.lanes {
			t.Errorf("%d streams, %d publishers: %d lanes, want %d", tc.streams, tc.publishers, got, tc.lanes)
		}
		seen := map[int]bool{}
		for w := range tc.publishers {
			owned, lane := c.owned(w)
			if !equalInts(owned, tc.owned[w]) || lane != tc.lane[w] {
				t.Errorf("%d streams, %d publishers: publisher %d owns %v lane %d, want %v lane %d",
					tc.streams, tc.publishers, w, owned, lane, tc.owned[w], tc.lane[w])
			}
			for _, k := range owned {
				l := c.lane(k, lane)
				if seen[l] || l >= tc.streams*tc.lanes {
					t.Errorf("%d streams, %d publishers: lane index %d shared or out of range", tc.streams, tc.publishers, l)
				}
				seen[l] = true
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
