package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a run's outcome; it is printed as a table and written as JSON.
type Report struct {
	Label       string       `json:"label,omitempty"`
	Started     time.Time    `json:"started"`
	Config      ReportConfig `json:"config"`
	NoFileLimit uint64       `json:"nofile_limit"`
	Warnings    []string     `json:"warnings,omitempty"`
	Connections struct {
		Requested        int            `json:"requested"`
		Established      int            `json:"established"`
		Failed           int            `json:"failed"`
		DroppedDuringRun int            `json:"dropped_during_run"`
		Seconds          float64        `json:"connect_seconds"`
		Errors           map[string]int `json:"errors,omitempty"`
		CloseCodes       map[string]int `json:"close_codes,omitempty"`
	} `json:"connections"`
	Publish struct {
		Mode           string  `json:"mode,omitempty"`
		TargetRate     float64 `json:"target_rate"`
		Events         int64   `json:"events"`
		Requests       int64   `json:"requests"`
		Failed         int64   `json:"failed"`
		Uncertain      int64   `json:"uncertain"`
		Seconds        float64 `json:"seconds"`
		EventsPerSec   float64 `json:"events_per_sec"`
		RequestLatency Latency `json:"request_latency"`
		FirstError     string  `json:"first_error,omitempty"`
	} `json:"publish"`
	Delivery DeliveryReport `json:"delivery"`
	Latency  Latency        `json:"latency"`
	Gateway  struct {
		Baseline             []GatewaySample `json:"baseline,omitempty"`
		Idle                 []GatewaySample `json:"idle,omitempty"`
		Held                 []GatewaySample `json:"held,omitempty"`
		End                  []GatewaySample `json:"end,omitempty"`
		RSSPerConn           float64         `json:"rss_per_conn_bytes"`
		HeapPerConn          float64         `json:"heap_per_conn_bytes"`
		StackPerConn         float64         `json:"stack_per_conn_bytes"`
		GoroutinesPerConn    float64         `json:"goroutines_per_conn"`
		CPUSecondsRun        float64         `json:"cpu_seconds_run"`
		CPUMicrosPerDelivery float64         `json:"cpu_us_per_delivery"`
		// From the gateways' metrics over the run: events per frame
		// written, and the bucket bounds (ms) holding the median and the
		// 99th percentile of publish → write, the gateway's share of the
		// latency (the client's read is not in it); -1 is past the last
		// finite bound.
		EventsPerFrame float64 `json:"events_per_frame"`
		LatencyP50Max  float64 `json:"delivery_latency_p50_le_ms"`
		LatencyP99Max  float64 `json:"delivery_latency_p99_le_ms"`
	} `json:"gateway"`
	// Machine is CPU use from the idle sample to the end, in cores:
	// OtherCores is everything else on the machine, the noise to judge
	// the figures by.
	Machine struct {
		Seconds      float64 `json:"seconds"`
		BusyCores    float64 `json:"busy_cores"`
		GatewayCores float64 `json:"gateway_cores"`
		LoadgenCores float64 `json:"loadgen_cores"`
		OtherCores   float64 `json:"other_cores"`
	} `json:"machine"`
	Problems []string `json:"problems"`
	Notes    []string `json:"notes,omitempty"`
}

// DeliveryReport is what the subscriptions received against what was
// published.
type DeliveryReport struct {
	Expected             uint64  `json:"expected"`
	Received             uint64  `json:"received"`
	Missing              uint64  `json:"missing"`
	Reordered            uint64  `json:"reordered"`
	Duplicates           uint64  `json:"duplicates"`
	Unexpected           uint64  `json:"unexpected"`
	ClientsWithAnomalies int     `json:"clients_with_anomalies"`
	ProtocolErrors       uint64  `json:"protocol_errors"`
	FirstProtocolError   string  `json:"first_protocol_error,omitempty"`
	HolesOverflow        bool    `json:"holes_overflow,omitempty"`
	Frames               int64   `json:"frames"`
	EventsPerFrame       float64 `json:"events_per_frame"`
	Seconds              float64 `json:"seconds"`
	PerSec               float64 `json:"deliveries_per_sec"`
}

// ReportConfig is the part of the configuration that shapes the figures.
type ReportConfig struct {
	URLs        []string `json:"urls"`
	Transport   string   `json:"transport"`
	Conns       int      `json:"conns"`
	Subs        int      `json:"subs"`
	Projects    int      `json:"projects"`
	Collections int      `json:"collections"`
	Rate        float64  `json:"rate"`
	Size        int      `json:"size"`
	Duration    string   `json:"duration"`
	Mode        string   `json:"publish"`
	Batch       int      `json:"batch"`
	Interval    string   `json:"batch_interval,omitempty"`
	Publishers  int      `json:"publishers"`
	SourceIPs   int      `json:"source_ips"`
}

func reportConfig(c *config) ReportConfig {
	return ReportConfig{URLs: c.URLs, Transport: c.Transport, Conns: c.Conns, Subs: c.Subs, Projects: c.Projects, Collections: c.Collections,
		Rate: c.Rate, Size: c.Size, Duration: c.Duration.String(), Mode: c.Mode, Batch: c.Batch, Interval: c.Interval.String(), Publishers: c.Publishers,
		SourceIPs: c.SourceIPs}
}

// WriteTable prints the report for people.
func (rep *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	c := rep.Config
	if rep.Label != "" {
		row("run", "%s", rep.Label)
	}
	row("load", "%d %s conns × %d subs over %d streams; %s publish at %.0f ev/s, %d B, %s", c.Conns, c.Transport, c.Subs,
		c.Projects*c.Collections, c.Mode, c.Rate, c.Size, c.Duration)
	cn := rep.Connections
	row("connections", "%d established, %d failed, %d dropped during run (%.1fs to connect; nofile %d)",
		cn.Established, cn.Failed, cn.DroppedDuringRun, cn.Seconds, rep.NoFileLimit)
	for _, k := range sortedKeys(cn.Errors) {
		row("  dial error", "%d× %s", cn.Errors[k], k)
	}
	for _, k := range sortedKeys(cn.CloseCodes) {
		row("  closed", "%d× %s", cn.CloseCodes[k], k)
	}
	if p := rep.Publish; p.Mode != "" {
		row("published", "%d events in %d requests, %.0f ev/s (%d failed, %d uncertain)", p.Events, p.Requests, p.EventsPerSec, p.Failed, p.Uncertain)
		row("publish call", "p50 %.2f ms  p99 %.2f ms  max %.2f ms", p.RequestLatency.P50, p.RequestLatency.P99, p.RequestLatency.Max)
	}
	d := rep.Delivery
	row("delivered", "%d of %d expected; missing %d, reordered %d, duplicated %d, beyond %d (%d clients affected)",
		d.Received, d.Expected, d.Missing, d.Reordered, d.Duplicates, d.Unexpected, d.ClientsWithAnomalies)
	if d.Received > 0 {
		row("throughput", "%.0f deliveries/s over %.1fs; %.2f events per frame", d.PerSec, d.Seconds, d.EventsPerFrame)
		l := rep.Latency
		row("latency", "p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms", l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	g := rep.Gateway
	for i := range g.End {
		s := g.End[i]
		row(fmt.Sprintf("gateway %d", s.PID), "rss %s, cpu %.2fs, goroutines %d, heap %s%s", mib(s.RSSBytes), s.CPUSeconds, s.Goroutines,
			mib(s.HeapInuse), errSuffix(s.Err))
	}
	if g.RSSPerConn != 0 {
		row("per connection", "rss %.1f KiB, heap %.1f KiB, stacks %.1f KiB, %.2f goroutines (idle, after settle)",
			g.RSSPerConn/1024, g.HeapPerConn/1024, g.StackPerConn/1024, g.GoroutinesPerConn)
	}
	if g.EventsPerFrame != 0 {
		row("gateway view", "%.2f events per frame; publish → written p50 ≤ %s, p99 ≤ %s (its histogram's bucket bounds)",
			g.EventsPerFrame, bound(g.LatencyP50Max), bound(g.LatencyP99Max))
	}
	if g.CPUMicrosPerDelivery != 0 {
		row("gateway cpu", "%.2fs during the run, %.3f µs per delivery", g.CPUSecondsRun, g.CPUMicrosPerDelivery)
	}
	if mc := rep.Machine; mc.Seconds > 0 {
		row("machine cpu", "gateway %.2f, loadgen %.2f, other processes %.2f cores (of %d) over %.1fs",
			mc.GatewayCores, mc.LoadgenCores, mc.OtherCores, machineCPUs(), mc.Seconds)
	}
	for _, x := range rep.Warnings {
		row("WARNING", "%s", x)
	}
	for _, x := range rep.Notes {
		row("note", "%s", x)
	}
	if len(rep.Problems) == 0 {
		row("result", "clean: no loss, no reordering, no duplicates, no failed connections")
	} else {
		row("result", "NOT CLEAN: %s", strings.Join(rep.Problems, "; "))
	}
	tw.Flush()
}

func bound(ms float64) string {
	if ms < 0 {
		return "∞ (beyond the last bucket)"
	}
	return strconv.FormatFloat(ms, 'g', 4, 64) + " ms"
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
