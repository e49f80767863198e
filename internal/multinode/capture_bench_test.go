package multinode

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/pgtest"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestCaptureThroughputLatency measures change capture end to end: rows
// committed to PostgreSQL, captured by one gateway process, published
// through Redis and delivered to a WebSocket subscriber of that gateway.
// It is a measurement, not a check, so it runs only with SYNCGATE_BENCH=1:
//
//	SYNCGATE_BENCH=1 go test -run TestCaptureThroughputLatency -v -timeout 10m ./internal/multinode
//
// SYNCGATE_BENCH_SECONDS sets each phase's length (default 10);
// SYNCGATE_BENCH_SLOW=1 counts deliveries later than 300 ms per 100 ms of
// commit time, to tell a stall from a backlog;
// SYNCGATE_BENCH_PGCONF=name=value sets a PostgreSQL parameter first;
// SYNCGATE_BENCH_PROFILES=DIR saves a 3 s CPU profile of the gateway
// from the start of each phase's writes. Each
// subtest commits single-row INSERTs from several writer connections,
// rowsPerTx statements to a transaction (sent as one pipelined batch when
// more than one), either as fast as the writers go (rate 0) or paced in
// 10 ms ticks. Throughput is rows delivered over the time from the first
// commit to the last delivery; latency is the event's timestamp (the
// commit time PostgreSQL recorded) to the frame read by the subscriber,
// which is after the event is in history (the Redis function appends it
// to the stream before it publishes it).
func TestCaptureThroughputLatency(t *testing.T) {
	if os.Getenv("SYNCGATE_BENCH") != "1" {
		t.Skip("a measurement; set SYNCGATE_BENCH=1")
	}
	secs := 10
	if v := os.Getenv("SYNCGATE_BENCH_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SYNCGATE_BENCH_SECONDS=%q: want a positive number of seconds", v)
		}
		secs = n
	}
	phase := time.Duration(secs) * time.Second
	pg := pgtest.Start(t)
	rs := redistest.Start(t)
	setup, err := pgx.Connect(context.Background(), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setup.Close(context.Background()) })
	if v := os.Getenv("SYNCGATE_BENCH_PGCONF"); v != "" { // e.g. "wal_init_zero=off"
		name, val, _ := strings.Cut(v, "=")
		if _, err := setup.Exec(context.Background(), `ALTER SYSTEM SET `+pgx.Identifier{name}.Sanitize()+` = '`+val+`'`); err != nil {
			t.Fatal(err)
		}
		if _, err := setup.Exec(context.Background(), `SELECT pg_reload_conf()`); err != nil {
			t.Fatal(err)
		}
	}
	metricsAddr := freeAddr(t)
	gw := startCaptureProc(t, rs.URL(), pg.URL(), 0, "SYNCGATE_POSTGRES_PROJECT=p1", "SYNCGATE_PPROF=true", "SYNCGATE_METRICS_ADDR="+metricsAddr)
	met := &proc{addr: metricsAddr}                    // /metrics and /debug/pprof
	profileDir := os.Getenv("SYNCGATE_BENCH_PROFILES") // a CPU profile of the gateway per subtest, when set
	awaitCapturing(t, met, -1)
	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
	st := &stages{gateway: gw.cmd.Process.Pid, pg: pg, rs: rs}
	t.Cleanup(func() {
		// Warnings tell a capture restart or a failed publish from a slow machine.
		log, _ := os.ReadFile(gw.log)
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				t.Logf("gateway: %s", line)
			}
		}
	})

	for _, tc := range []struct {
		writers, rowsPerTx, rate int
	}{
		{8, 1, 0},      // single-row transactions, as fast as 8 writers go
		{4, 10, 0},     // transactions of 10 single-row INSERTs, as fast as 4 writers go
		{2, 1, 1000},   // paced: 1,000 single-row transactions/s
		{4, 1, 5000},   // 5,000 single-row transactions/s
		{4, 10, 5000},  // 5,000 rows/s in transactions of 10
		{4, 10, 10000}, // 10,000 rows/s in transactions of 10
	} {
		name := fmt.Sprintf("writers%d-rows%d-rate%d", tc.writers, tc.rowsPerTx, tc.rate)
		t.Run(name, func(t *testing.T) {
			table := fmt.Sprintf("bench_%d_%d_%d", tc.writers, tc.rowsPerTx, tc.rate)
			if _, err := setup.Exec(context.Background(), `CREATE TABLE `+table+` (id bigint PRIMARY KEY, pad text)`); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var lat, hist []time.Duration // commit → client, commit → history
			seen := map[string]string{}   // documentId → offset
			var dups []string
			type late struct {
				n   int
				max time.Duration
			}
			slow := map[int]late{} // by 100 ms of commit time since start
			start := time.Now()
			var delivered atomic.Int64
			var lastDelivery atomic.Int64
			done := listen(t, ctx, "ws://"+gw.Addr()+"/v1/ws", tok, table, func(n int, evs []syncgate.Event) {
				now := time.Now()
				lastDelivery.Store(now.UnixNano())
				mu.Lock()
				for _, ev := range evs {
					if ev.Type != syncgate.TypeInsert {
						continue // the table's create_table
					}
					delivered.Add(1)
					lat = append(lat, now.Sub(ev.Timestamp))
					// The offset's first number is the Redis stream entry's
					// ID: the millisecond Redis appended it to history.
					if o, err := backplane.ParseOffset(ev.Offset); err == nil {
						if at := time.UnixMilli(int64(o.Hi)); at.After(start.Add(-time.Hour)) && at.Before(now.Add(time.Second)) {
							hist = append(hist, at.Sub(ev.Timestamp))
						}
					}
					if d := now.Sub(ev.Timestamp); d > 300*time.Millisecond {
						// Per 100 ms of commit time: how many, how late at most.
						b := int(ev.Timestamp.Sub(start) / (100 * time.Millisecond))
						sb := slow[b]
						sb.n++
						sb.max = max(sb.max, d)
						slow[b] = sb
					}
					if prev, ok := seen[ev.DocumentID]; ok {
						dups = append(dups, fmt.Sprintf("id %s at offsets %s and %s", ev.DocumentID, prev, ev.Offset))
					}
					seen[ev.DocumentID] = ev.Offset
				}
				mu.Unlock()
			}, true)

			var committed atomic.Int64
			var next atomic.Int64
			s0 := st.sample()
			start = time.Now()
			end := start.Add(phase)
			var wg sync.WaitGroup
			waits := map[string]int{} // the walsender's wait event, sampled every 20 ms
			var walsender []string    // with SYNCGATE_BENCH_SLOW: WAL not yet sent, and sent but not confirmed, each 500 ms
			if os.Getenv("SYNCGATE_BENCH_SLOW") != "" {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mon, err := pgx.Connect(ctx, pg.URL())
					if err != nil {
						t.Error(err)
						return
					}
					defer mon.Close(context.Background())
					tick := time.NewTicker(20 * time.Millisecond)
					defer tick.Stop()
					for n := 1; time.Now().Before(end); n++ {
						<-tick.C
						var wait string
						if err := mon.QueryRow(ctx, `SELECT coalesce(wait_event, state, '') FROM pg_stat_activity WHERE backend_type = 'walsender'`).Scan(&wait); err == nil {
							waits[wait]++
						}
						if n%25 != 0 {
							continue
						}
						var unsent, unconfirmed int64
						if err := mon.QueryRow(ctx, `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn), -1)::bigint,
							coalesce(pg_wal_lsn_diff(sent_lsn, flush_lsn), -1)::bigint FROM pg_stat_replication`).Scan(&unsent, &unconfirmed); err != nil {
							t.Error(err)
							return
						}
						walsender = append(walsender, fmt.Sprintf("%.1fs:%dk/%dk", time.Since(start).Seconds(), unsent>>10, unconfirmed>>10))
					}
				}()
			}
			if profileDir != "" {
				// The gateway while the writers write, 3 s from the start.
				wg.Add(1)
				go func() {
					defer wg.Done()
					profile(t, met, filepath.Join(profileDir, name+".pprof"), min(phase, 3*time.Second))
				}()
			}
			for w := 0; w < tc.writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := pgx.Connect(ctx, pg.URL())
					if err != nil {
						t.Error(err)
						return
					}
					defer conn.Close(context.Background())
					insertTx := func() error {
						if tc.rowsPerTx == 1 {
							_, err := conn.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'x')`, next.Add(1))
							return err
						}
						b := &pgx.Batch{} // one implicit transaction
						for i := 0; i < tc.rowsPerTx; i++ {
							b.Queue(`INSERT INTO `+table+` VALUES ($1, 'x')`, next.Add(1))
						}
						return conn.SendBatch(ctx, b).Close()
					}
					var tick *time.Ticker
					if tc.rate > 0 {
						// Every 10 ms each writer commits what its share
						// of the rate makes due by then.
						tick = time.NewTicker(10 * time.Millisecond)
						defer tick.Stop()
					}
					share := float64(tc.rate) / float64(tc.writers)
					mine := 0
					for time.Now().Before(end) {
						due := mine + tc.rowsPerTx
						if tick != nil {
							<-tick.C
							due = int(share * time.Since(start).Seconds())
						}
						for mine+tc.rowsPerTx <= due {
							if err := insertTx(); err != nil {
								t.Error(err)
								return
							}
							mine += tc.rowsPerTx
							committed.Add(int64(tc.rowsPerTx))
						}
					}
				}()
			}
			wg.Wait()
			writeTime := time.Since(start)
			atWriteEnd := delivered.Load()
			await(t, 120*time.Second, "every committed row delivered", func() bool { return delivered.Load() >= committed.Load() })
			s1 := st.sample()
			total := time.Unix(0, lastDelivery.Load()).Sub(start)
			drain := total - writeTime // the backlog left when the writers stopped, captured with no writer competing
			drainRate := 0.0
			if backlog := delivered.Load() - atWriteEnd; backlog > 0 && drain > 0 {
				drainRate = float64(backlog) / drain.Seconds()
			}
			mu.Lock()
			slices.Sort(lat)
			slices.Sort(hist)
			pct := func(l []time.Duration, q float64) time.Duration {
				if len(l) == 0 {
					return 0
				}
				return l[min(len(l)-1, int(q*float64(len(l))))].Round(100 * time.Microsecond)
			}
			p := func(q float64) time.Duration { return pct(lat, q) }
			h := func(q float64) time.Duration { return pct(hist, q) }
			t.Logf("%s: %d rows committed in %s (%.0f rows/s offered); delivered %d, %.0f rows/s first commit to last delivery (%.0f rows/s draining the backlog after the writers stopped); latency commit→client p50 %s p99 %s max %s; commit→history (ms resolution, %d samples) p50 %s p99 %s max %s",
				name, committed.Load(), writeTime.Round(time.Millisecond), float64(committed.Load())/writeTime.Seconds(),
				delivered.Load(), float64(delivered.Load())/total.Seconds(), drainRate, p(0.5), p(0.99), p(1), len(hist), h(0.5), h(0.99), h(1))
			t.Logf("%s: %s; load average %s", name, s0.report(s1, delivered.Load()), loadavg())
			if os.Getenv("SYNCGATE_BENCH_SLOW") != "" {
				var keys []int
				for k := range slow {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				var b strings.Builder
				for _, k := range keys {
					fmt.Fprintf(&b, " %.1fs:%d≤%s", float64(k)/10, slow[k].n, slow[k].max.Round(time.Millisecond))
				}
				t.Logf("deliveries later than 300 ms, by commit time since the start (100 ms buckets: count≤latest):%s", b.String())
				t.Logf("WAL not yet sent / sent and not confirmed by the gateway, every 500 ms: %s; the walsender's wait events: %v", strings.Join(walsender, " "), waits)
			}
			if delivered.Load() != committed.Load() || len(dups) > 0 {
				t.Errorf("delivered %d rows, committed %d; %d delivered twice: %v", delivered.Load(), committed.Load(), len(dups), dups[:min(len(dups), 10)])
			}
			mu.Unlock()
			cancel()
			<-done
		})
	}
}

// loadavg is /proc/loadavg's first three numbers: how busy the shared
// machine was.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// profile saves a CPU profile of the gateway over d.
func profile(t testing.TB, p *proc, path string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.Addr(), max(1, int(d.Seconds()))))
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Error(err)
	}
}
