package multinode

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/internal/pgtest"
	"github.com/syncgate/syncgate/internal/redistest"
)

// stages samples where a capture benchmark phase spends its time: the CPU
// of each process on the path (the gateway, Redis, PostgreSQL's walsender
// and its other processes, this test process with the writers and the
// subscriber) and Redis's own account of its FCALLs (INFO commandstats).
type stages struct {
	gateway int
	pg      *pgtest.Server
	rs      *redistest.Server
}

// stageSample is one reading: CPU seconds by process, the FCALLs Redis
// ran and the microseconds it spent in them.
type stageSample struct {
	at         time.Time
	cpu        map[string]float64
	calls, use int64
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux this runs on.
const clockTicks = 100

// procCPU returns a process's user+system CPU seconds, and its parent's
// pid; with reaped, also those of its children that exited and were waited
// for (a PostgreSQL backend whose connection closed).
func procCPU(pid int, reaped bool) (secs float64, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	for i, field := range f[11:15] {
		if i < 2 || reaped {
			v, _ := strconv.ParseFloat(field, 64)
			secs += v / clockTicks
		}
	}
	return secs, ppid, true
}

func (st *stages) sample() stageSample {
	s := stageSample{at: time.Now(), cpu: map[string]float64{}}
	if v, _, ok := procCPU(st.gateway, false); ok {
		s.cpu["gateway"] = v
	}
	if v, _, ok := procCPU(st.rs.PID(), false); ok {
		s.cpu["redis"] = v
	}
	if v, _, ok := procCPU(os.Getpid(), false); ok {
		s.cpu["test"] = v
	}
	// PostgreSQL's processes are the postmaster's children; those that
	// exited (the writers' backends, at the end of a phase) are in its
	// children's times.
	post := st.pg.PID()
	if v, _, ok := procCPU(post, true); ok {
		s.cpu["postgres"] = v
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		v, ppid, ok := procCPU(pid, false)
		if !ok || ppid != post {
			continue
		}
		cmd, _ := os.ReadFile(d + "/cmdline")
		if strings.Contains(string(cmd), "walsender") {
			s.cpu["walsender"] += v
		} else {
			s.cpu["postgres"] += v
		}
	}
	if info, err := st.rs.Do("INFO", "commandstats"); err == nil {
		for _, line := range strings.Split(info, "\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_fcall:")
			if !ok {
				continue
			}
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls":
					s.calls = n
				case "usec":
					s.use = n
				}
			}
		}
	}
	return s
}

// report is the share of a core each process used between a and b, and
// the FCALLs of that interval (rows: the events they carried).
func (a stageSample) report(b stageSample, rows int64) string {
	d := b.at.Sub(a.at).Seconds()
	var parts []string
	for _, k := range []string{"gateway", "redis", "walsender", "postgres", "test"} {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*(b.cpu[k]-a.cpu[k])/d))
	}
	calls, use := b.calls-a.calls, b.use-a.use
	out := fmt.Sprintf("CPU over %.1f s (%% of one core): %s", d, strings.Join(parts, ", "))
	if calls > 0 {
		out += fmt.Sprintf("; Redis FCALLs: %d, %.0f rows/call, %.2f ms/call and %.1f µs/row inside Redis, %.0f%% of a core",
			calls, float64(rows)/float64(calls), float64(use)/float64(calls)/1000, float64(use)/float64(max(rows, 1)), float64(use)/1e4/d)
	}
	return out
}
