// Command loadgen measures a syncgate deployment: it opens many WebSocket
// connections (spread over gateway URLs and loopback source addresses),
// subscribes them, publishes numbered events at a set rate over HTTP or
// straight into Redis, and reports connections, loss and reordering per
// subscription (never hidden), deliveries per second, publish-to-receive
// latency from an HDR-style histogram, and, given the gateway's PID and
// metrics URL, its RSS, CPU seconds and goroutines, so that memory per
// connection and CPU per delivery come out. See BENCHMARKS.md.
//
// It exits 1 when the run was not clean (loss, reordering, duplicates or
// failed connections), after printing the report.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run parses args, performs the run and prints the report.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	r := &runner{cfg: cfg, stderr: stderr}
	rep, err := r.run(ctx)
	if err != nil {
		return err
	}
	rep.WriteTable(stdout)
	if cfg.JSONPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if cfg.JSONPath == "-" {
			_, err = stdout.Write(b)
		} else {
			err = os.WriteFile(cfg.JSONPath, b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("writing the JSON report: %w", err)
		}
	}
	if len(rep.Problems) > 0 {
		return errAnomaly
	}
	return nil
}
