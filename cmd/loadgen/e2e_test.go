package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/wstest"
)

// TestRunAgainstGateway drives an in-process gateway end to end, over two
// loopback source addresses, in each publishing mode that needs no Redis
// and over both client transports (WebSocket and SSE), and checks the
// counts: every connection live, every published event
// delivered exactly once and in order to each of its subscribers.
func TestRunAgainstGateway(t *testing.T) {
	for _, tc := range []struct{ mode, transport string }{{"http", "ws"}, {"http-batch", "ws"}, {"http-batch", "sse"}} {
		mode := tc.mode
		t.Run(mode+"-"+tc.transport, func(t *testing.T) {
			node := wstest.StartNode(t, wstest.NodeConfig{})
			out := filepath.Join(t.TempDir(), "report.json")
			const conns, subs, collections = 30, 2, 5
			args := []string{
				"-url", node.URL, "-secret", wstest.Secret, "-key", wstest.Key,
				"-conns", strconv.Itoa(conns), "-subs", strconv.Itoa(subs), "-collections", strconv.Itoa(collections),
				"-source-ips", "2", "-rate", "400", "-duration", "1s", "-publish", mode, "-batch", "7",
				"-publishers", "2", "-size", "300", "-settle", "0", "-progress", "0", "-drain", "10s",
				"-json", out, "-label", "e2e", "-transport", tc.transport,
			}
			rep, stdout := runReport(t, args, out, 25*time.Second)
			c, d, p := rep.Connections, rep.Delivery, rep.Publish
			if c.Established != conns || c.Failed != 0 || c.DroppedDuringRun != 0 {
				t.Fatalf("connections %+v", c)
			}
			// How many events a 1 s run at 400/s manages depends on the
			// machine's load; the counts below are what must hold.
			if p.Events == 0 || p.Failed != 0 || p.Uncertain != 0 {
				t.Fatalf("published %+v", p)
			}
			// Each of the 5 streams has conns*subs/collections = 12
			// subscribers, and the publisher spreads events evenly over
			// the streams: expected is exactly 12 × published.
			if want := uint64(p.Events) * conns * subs / collections; d.Expected != want || d.Received != want {
				t.Fatalf("expected %d received %d, want both %d", d.Expected, d.Received, want)
			}
			if d.Missing != 0 || d.Reordered != 0 || d.Duplicates != 0 || d.Unexpected != 0 || d.ProtocolErrors != 0 {
				t.Fatalf("delivery anomalies: %+v", d)
			}
			if rep.Latency.Count != d.Received || rep.Latency.P99 <= 0 || rep.Latency.Max > 5000 {
				t.Fatalf("latency %+v", rep.Latency)
			}
			if len(rep.Problems) != 0 {
				t.Fatalf("problems %v", rep.Problems)
			}
			if !strings.Contains(stdout, "clean: no loss") {
				t.Fatalf("table does not say the run was clean:\n%s", stdout)
			}
		})
	}
}

// TestRunReportsFailedConnections checks that refused connections make a
// run fail, with the count in the report.
func TestRunReportsFailedConnections(t *testing.T) {
	node := wstest.StartNode(t, wstest.NodeConfig{})
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{
		"-url", node.URL, "-secret", "not-the-secret", "-conns", "3", "-duration", "0",
		"-settle", "0", "-progress", "0",
	}, &stdout, &stderr)
	if err != errAnomaly {
		t.Fatalf("run with a wrong secret: %v, want errAnomaly\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "NOT CLEAN: 3 connections failed") {
		t.Fatalf("report:\n%s", stdout.String())
	}
}

// TestHandleFrame feeds frames as the gateway writes them: a batch with a
// gap, and foreign frames.
func TestHandleFrame(t *testing.T) {
	r := &runner{}
	c := &client{subs: []*clientSub{{project: "lg0", collection: "c1", seq: make([]SeqChecker, 1)}}}
	now := time.Now()
	ev := func(seq int) string {
		return `{"type":"document:updated","project":"lg0","collection":"c1","documentId":"d","document":{"seq":` +
			strconv.Itoa(seq) + `,"t":` + strconv.FormatInt(now.Add(-5*time.Millisecond).UnixNano(), 10) +
			`,"pad":"xx"},"timestamp":"2026-11-22T10:00:00Z","offset":"e-` + strconv.Itoa(seq) + `"}`
	}
	frame := `{"op":"events","project":"lg0","collection":"c1","events":[` + ev(1) + `,` + ev(2) + `,` + ev(4) + `]}`
	n, err := r.handleFrame(c, []byte(frame), now)
	if err != nil || n != 3 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if res := c.subs[0].seq[0].Result(4); res.Missing != 1 || res.Received != 3 {
		t.Fatalf("result %+v, want 1 missing of 4", res)
	}
	if s := r.latency.Snapshot(); s.Count() != 3 || s.Quantile(.5) < 5000 || s.Quantile(.5) > 5100 {
		t.Fatalf("latency count %d p50 %d µs, want 3 at 5 ms", s.Count(), s.Quantile(.5))
	}
	for _, bad := range []string{
		`{"op":"events","project":"lg0","collection":"other","events":[` + ev(5) + `]}`,
		`{"op":"error","code":"internal","message":"x"}`,
		`not json`,
	} {
		if _, err := r.handleFrame(c, []byte(bad), now); err == nil {
			t.Errorf("frame %.60s accepted", bad)
		}
	}
	if _, err := r.handleFrame(c, []byte(`{"op":"pong"}`), now); err != nil {
		t.Errorf("pong: %v", err)
	}
}

// TestHandleFrameLanes: each lane of a shared stream is checked on its
// own, and a lane the run does not have is a protocol error.
func TestHandleFrameLanes(t *testing.T) {
	r := &runner{}
	c := &client{subs: []*clientSub{{project: "lg0", collection: "c0", seq: make([]SeqChecker, 2)}}}
	ev := func(seq, lane int) string {
		return `{"type":"document:updated","project":"lg0","collection":"c0","documentId":"d","document":{"seq":` +
			strconv.Itoa(seq) + `,"t":1,"l":` + strconv.Itoa(lane) + `},"offset":"e-1"}`
	}
	frame := `{"op":"events","project":"lg0","collection":"c0","events":[` + ev(1, 0) + `,` + ev(1, 1) + `,` + ev(2, 1) + `,` + ev(2, 0) + `]}`
	if n, err := r.handleFrame(c, []byte(frame), time.Now()); err != nil || n != 4 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	for lane, s := range c.subs[0].seq {
		if res := s.Result(2); res.Received != 2 || res.Missing != 0 || res.Reordered != 0 || res.Duplicates != 0 {
			t.Errorf("lane %d: %+v, want 1 and 2 in order", lane, res)
		}
	}
	bad := `{"op":"events","project":"lg0","collection":"c0","events":[` + ev(3, 2) + `]}`
	if _, err := r.handleFrame(c, []byte(bad), time.Now()); err == nil {
		t.Error("an event of lane 2 in a run of 2 lanes was accepted")
	}
}

// runReport runs the load generator with args, which write its JSON report
// to out, within timeout, and returns the report and the printed table.
func runReport(t *testing.T, args []string, out string, timeout time.Duration) (Report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, stdout.String()
}
