package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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
	Err        string  `json:"error,omitempty"`
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
		m, err := scrape(ctx, metricsURL)
		if err != nil {
			errs = append(errs, err.Error())
		}
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

// scrape reads the unlabelled samples of a Prometheus text exposition.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
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
	return out, sc.Err()
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
