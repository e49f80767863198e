package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/server"
	"github.com/syncgate/syncgate/internal/socketio"
)

// gateway is a running node: its listeners, hub and backplane.
type gateway struct {
	cfg     *config
	log     *slog.Logger
	bp      backplane.Backplane
	hub     *hub.Hub
	sio     *socketio.Server
	ln      net.Listener
	srv     *http.Server
	metrics *http.Server
	metLn   net.Listener
	wg      sync.WaitGroup
	errc    chan error

	capture *captureRunner // change capture from PostgreSQL; nil when off (postgres.go)
}

// open builds and starts every part; on error what was started is closed.
func open(ctx context.Context, cfg *config, log *slog.Logger) (_ *gateway, err error) {
	g := &gateway{cfg: cfg, log: log, errc: make(chan error, 2)}
	m := metrics.New()
	verifier, err := auth.NewVerifier(auth.Config{Secret: []byte(cfg.JWTSecret), JWKSURL: cfg.JWKSURL})
	if err != nil {
		return nil, fmt.Errorf("SYNCGATE_JWT_SECRET/SYNCGATE_JWKS_URL: %w", err)
	}
	g.bp, err = newBackplane(ctx, cfg, log, m)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.capture.stop()
			_ = g.bp.Close()
		}
	}()
	g.hub, err = hub.New(hub.Config{
		Verifier:       verifier,
		MaxConnections: cfg.MaxConnections,
		OriginPatterns: cfg.AllowedOrigins,
		Logger:         log,
		Metrics:        m,
	}, g.bp)
	if err != nil {
		return nil, err
	}
	g.sio, err = socketio.New(socketio.Config{
		Verifier:       verifier,
		MaxConnections: cfg.MaxConnections,
		OriginPatterns: cfg.AllowedOrigins,
		Logger:         log,
		Metrics:        m,
	}, g.bp)
	if err != nil {
		return nil, err
	}
	// One backplane feeds both client protocols.
	if err := g.bp.Start(ctx, backplane.Fanout(g.hub, g.sio)); err != nil {
		return nil, fmt.Errorf("starting backplane: %w", err)
	}
	if g.capture, err = startCapture(cfg, log, m, g.bp); err != nil {
		return nil, err
	}
	ready := func() error { return nil }
	if c, ok := g.bp.(backplane.Checker); ok {
		ready = c.Ready
	}
	if _, ok := g.bp.(backplane.Checker); !ok {
		m.BackplaneUp.Set(1)
	}
	extra := map[string]http.Handler{}
	if cfg.Dev {
		for pattern, h := range devHandlers() {
			extra[pattern] = h
		}
	}
	handler := server.Handler(server.Config{
		Hub:             g.hub,
		SocketIO:        g.sio,
		Publisher:       g.bp,
		Ready:           ready,
		Keys:            auth.ParseKeys(cfg.PublishKeys),
		Metrics:         m,
		MetricsSeparate: cfg.MetricsAddr != "",
		Extra:           extra,
		Logger:          log,
	})
	g.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on SYNCGATE_ADDR %q: %w", cfg.Addr, err)
	}
	g.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	g.serve(g.srv, g.ln)

	if cfg.MetricsAddr != "" || cfg.Pprof {
		mux := http.NewServeMux()
		mux.Handle("/metrics", server.MetricsHandler(m))
		if cfg.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		addr := cfg.MetricsAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		g.metLn, err = net.Listen("tcp", addr)
		if err != nil {
			_ = g.ln.Close()
			return nil, fmt.Errorf("listen on SYNCGATE_METRICS_ADDR %q: %w", addr, err)
		}
		g.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.serve(g.metrics, g.metLn)
		log.Info("metrics serving", "addr", g.metLn.Addr().String(), "pprof", cfg.Pprof)
	}
	return g, nil
}

func (g *gateway) serve(s *http.Server, ln net.Listener) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.errc <- err
		}
	}()
}

// Addr is the client listener's address.
func (g *gateway) Addr() string { return g.ln.Addr().String() }

// wait serves until ctx ends, then drains: readiness turns false and the
// listener stops accepting, live clients are closed with 1012 spread over
// the grace period after their queues are flushed, and the backplane closes.
func (g *gateway) wait(ctx context.Context) error {
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-g.errc:
	}
	g.capture.stop() // before the backplane closes, so its last publish lands
	g.log.Info("draining", "grace", g.cfg.ShutdownGrace, "connections", g.hub.Connections())
	dctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownGrace+5*time.Second)
	defer cancel()
	drained := make(chan error, 2)
	go func() { drained <- g.hub.Drain(dctx, g.cfg.ShutdownGrace) }()
	go func() { drained <- g.sio.Drain(dctx, g.cfg.ShutdownGrace) }()
	// Stop accepting; in-flight publish requests finish.
	if err := g.srv.Shutdown(dctx); err != nil {
		g.log.Warn("http shutdown", "err", err)
	}
	if err := errors.Join(<-drained, <-drained); err != nil {
		g.log.Warn("drain cut short", "err", err)
	}
	if g.metrics != nil {
		_ = g.metrics.Shutdown(dctx)
	}
	err := g.bp.Close()
	g.wg.Wait()
	g.log.Info("stopped")
	return errors.Join(serveErr, err)
}

// printDevHelp prints a ready-to-use client token and publish command for
// the development node. It goes to stdout, not the log: logs never carry
// tokens.
func printDevHelp(w io.Writer, cfg *config, addr string) {
	token, err := auth.SignHS256([]byte(cfg.JWTSecret), auth.Claims{
		Subject:   "dev-user",
		ExpiresAt: time.Now().Add(24 * time.Hour),
		Projects:  []string{"*"},
	})
	if err != nil {
		fmt.Fprintln(w, "could not mint a development token:", err)
		return
	}
	key := strings.Split(cfg.PublishKeys, ",")[0]
	fmt.Fprintf(w, `
syncgate development node on http://%[1]s (in-memory backplane; generated secret and publish key)

  Client token (user dev-user, every project, valid 24h):
    %[2]s

  Demo page:
    http://%[1]s/#token=%[2]s

  Subscribe (any WebSocket client, e.g. npx wscat):
    npx wscat -s syncgate.v1 -c 'ws://%[1]s/v1/ws' -H 'Authorization: Bearer %[2]s'
    > {"op":"subscribe","id":"1","project":"demo","collection":"todos"}

  Publish:
    curl -sS -X POST http://%[1]s/v1/publish \
      -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' \
      -d '{"type":"document:created","project":"demo","collection":"todos","documentId":"t1","document":{"title":"Hello"}}'

  Set SYNCGATE_JWT_SECRET and SYNCGATE_PUBLISH_KEYS to run for real.

`, addr, token, key)
}
