package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// GatewaySample is one gateway process at one moment.
type GatewaySample struct {
	PID        int     `json:"pid,omitempty"`
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Goroutines int64   `json:"goroutines"`
	HeapInuse  int64   `json:"heap_inuse_bytes"`
	StackInuse int64   `json:"stack_inuse_bytes"`
	// Events and Frames are the gateway's syncgate_batch_size_events sum
	// and count: events written and the events frames that carried them.
	Events float64 `json:"batch_events"`
	Frames float64 `json:"batch_frames"`
	// Latency is the gateway's syncgate_delivery_latency_seconds
	// histogram, cumulative, by upper bound: publish timestamp to the
	// frame's write, as the gateway sees it.
	Latency []Bucket `json:"delivery_latency,omitempty"`
	Err     string   `json:"error,omitempty"`
}

// Bucket is one cumulative histogram bucket: Count observations ≤ LE
// seconds; the last bucket's LE is math.MaxFloat64 (Prometheus' +Inf).
type Bucket struct {
	LE    float64 `json:"le"`
	Count float64 `json:"count"`
}

// sampleGateway reads RSS and CPU time from /proc/<pid> and the Go runtime
// figures from the gateway's /metrics. Either source may be absent.
func sampleGateway(ctx context.Context, pid int, metricsURL string) GatewaySample {
	s := GatewaySample{PID: pid}
	var errs []string
	if pid > 0 {
		if err := readProc(pid, &s); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if metricsURL != "" {
		m, lat, err := scrape(ctx, metricsURL)
		if err != nil {
			errs = append(errs, err.Error())
		}
		s.Events = m["syncgate_batch_size_events_sum"]
		s.Frames = m["syncgate_batch_size_events_count"]
		s.Latency = lat
		s.Goroutines = int64(m["go_goroutines"])
		s.HeapInuse = int64(m["go_memstats_heap_inuse_bytes"])
		s.StackInuse = int64(m["go_memstats_stack_inuse_bytes"])
	}
	s.Err = strings.Join(errs, "; ")
	return s
}

func readProc(pid int, s *GatewaySample) error {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			s.RSSBytes = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	s.CPUSeconds = (ut + st) / clockTicks
	return nil
}

// latencyBucket prefixes the buckets of the gateway's delivery latency
// histogram in its exposition.
const latencyBucket = `syncgate_delivery_latency_seconds_bucket{le="`

// scrape reads the unlabelled samples of a Prometheus text exposition,
// and the buckets of the delivery latency histogram.
func scrape(ctx context.Context, url string) (map[string]float64, []Bucket, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, nil, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return parseExposition(resp.Body)
}

// parseExposition is scrape's parser.
func parseExposition(r io.Reader) (map[string]float64, []Bucket, error) {
	out := map[string]float64{}
	var lat []Bucket
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(line, latencyBucket); ok {
			le, val, ok := strings.Cut(rest, `"} `)
			if !ok {
				continue
			}
			b, err1 := strconv.ParseFloat(le, 64)
			if math.IsInf(b, 1) {
				b = math.MaxFloat64 // "+Inf": JSON has no infinity
			}
			n, err2 := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err1 == nil && err2 == nil {
				lat = append(lat, Bucket{LE: b, Count: n})
			}
			continue
		}
		if strings.ContainsRune(line, '{') {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, lat, sc.Err()
}

// bucketQuantile is the upper bound of the bucket holding quantile q of
// the observations between two cumulative samples of one histogram (from
// and to, the same buckets), or 0 when there are none: "at most this";
// math.MaxFloat64 when it lies past the last finite bound.
func bucketQuantile(from, to []Bucket, q float64) float64 {
	if len(to) == 0 || (len(from) > 0 && len(from) != len(to)) {
		return 0
	}
	base := func(i int) float64 {
		if len(from) == 0 {
			return 0
		}
		return from[i].Count
	}
	total := to[len(to)-1].Count - base(len(to)-1)
	if total <= 0 {
		return 0
	}
	for i := range to {
		if to[i].Count-base(i) >= q*total {
			return to[i].LE
		}
	}
	return to[len(to)-1].LE
}

// sampleAll samples every configured gateway.
func (r *runner) sampleAll(ctx context.Context) []GatewaySample {
	n := max(len(r.cfg.PIDs), len(r.cfg.MetricsURL))
	out := make([]GatewaySample, n)
	for i := range out {
		pid, murl := 0, ""
		if i < len(r.cfg.PIDs) {
			pid = r.cfg.PIDs[i]
		}
		if i < len(r.cfg.MetricsURL) {
			murl = r.cfg.MetricsURL[i]
		}
		out[i] = sampleGateway(ctx, pid, murl)
	}
	return out
}

// machineBusy is the CPU seconds every CPU of the machine spent busy
// (user, nice, system, irq, softirq, steal) since boot, from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clockTicks
}

// selfCPU is this process's CPU seconds.
func selfCPU() float64 {
	var s GatewaySample
	if err := readProc(os.Getpid(), &s); err != nil {
		return 0
	}
	return s.CPUSeconds
}

// fetchProfiles saves gateway i's profile of kind (e.g. "profile?seconds=10"
// or "heap") from the pprof endpoint next to its metrics URL.
func (r *runner) fetchProfile(ctx context.Context, i int, kind, file string) error {
	base := strings.TrimSuffix(r.cfg.MetricsURL[i], "/metrics")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/"+kind, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d (is SYNCGATE_PPROF=true?)", req.URL, resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.cfg.ProfileDir, file), b, 0o644)
}

// profiles fetches a CPU profile of secs seconds (when secs > 0) and then a
// heap profile from every gateway, in the background; wait for the returned
// function.
func (r *runner) profiles(ctx context.Context, secs int, tag string) func() []string {
	if r.cfg.ProfileDir == "" {
		return func() []string { return nil }
	}
	if err := os.MkdirAll(r.cfg.ProfileDir, 0o755); err != nil {
		return func() []string { return []string{"profile: " + err.Error()} }
	}
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for i := range r.cfg.MetricsURL {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("gw%d-%s", i, tag)
			var err error
			if secs > 0 {
				err = r.fetchProfile(ctx, i, fmt.Sprintf("profile?seconds=%d", secs), name+"-cpu.pprof")
			}
			if err == nil {
				err = r.fetchProfile(ctx, i, "heap", name+"-heap.pprof")
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, "profile: "+err.Error())
				mu.Unlock()
			}
		}()
	}
	return func() []string { wg.Wait(); return errs }
}

// machineCPUs counts the machine's CPUs in /proc/stat (runtime.NumCPU
// sees only those this process may run on).
func machineCPUs() int {
	b, _ := os.ReadFile("/proc/stat")
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return n
}
