// Command gateway runs a syncgate node: client WebSockets on /v1/ws, HTTP
// publishing on /v1/publish, health, readiness and metrics. Configuration
// comes from SYNCGATE_* environment variables (see README.md). With none
// set it starts a development node with a generated secret and publish key
// and prints a client token and a publish command.
//
// `gateway token --sub U --projects p1,p2 [--collections a,b] [--roles r]
// [--ttl 1h]` prints a client JWT signed with SYNCGATE_JWT_SECRET instead.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// devShutdownGrace is a development node's drain time unless
// SYNCGATE_SHUTDOWN_GRACE says otherwise: Ctrl-C on a laptop should not wait
// the production default of 25 s.
const devShutdownGrace = time.Second

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			// The first signal starts the drain. The signals take their
			// default action again before it begins, so a second Ctrl-C
			// exits at once.
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			cancel()
		case <-done:
		}
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	close(done)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run starts the gateway and returns when ctx ends and the node has drained.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], getenv, stdout, stderr)
	}
	cfg, err := loadConfig(args, getenv)
	if err != nil {
		return err
	}
	if cfg.Dev && getenv("SYNCGATE_SHUTDOWN_GRACE") == "" {
		cfg.ShutdownGrace = devShutdownGrace
	}
	log := newLogger(cfg, stderr)
	g, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	if cfg.Dev {
		printDevHelp(stdout, cfg, g.Addr())
	}
	log.Info("syncgate gateway serving", "addr", g.Addr(), "backplane", cfg.backplaneName(), "dev", cfg.Dev)
	return g.wait(ctx)
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
