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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/server"
	"github.com/syncgate/syncgate/internal/transport/socketio"
	"github.com/syncgate/syncgate/internal/transport/sse"
)

// gateway is a running node: its listeners, the session engine with its
// transports, and the backplane.
type gateway struct {
	cfg      *config
	log      *slog.Logger
	bp       backplane.Backplane
	hub      *hub.Hub
	sio      *socketio.Server
	verifier *auth.Verifier
	ln       net.Listener
	srv      *http.Server
	metrics  *http.Server
	metLn    net.Listener
	wg       sync.WaitGroup
	errc     chan error

	capture *captureRunner // change capture from PostgreSQL; nil when off (postgres.go)
}

// open builds and starts every part; on error what was started is closed.
func open(ctx context.Context, cfg *config, log *slog.Logger) (_ *gateway, err error) {
	g := &gateway{cfg: cfg, log: log, errc: make(chan error, 2)}
	m := metrics.New()
	verifier, err := auth.NewVerifier(auth.Config{Secret: []byte(cfg.JWTSecret), JWKSURL: cfg.JWKSURL, Webhook: auth.WebhookConfig{
		URL: cfg.AuthURL, Key: cfg.AuthKey, Timeout: cfg.AuthTimeout, CacheTTL: cfg.AuthCacheTTL, Logger: log, Metrics: m,
	}})
	if err != nil {
		return nil, fmt.Errorf("SYNCGATE_JWT_SECRET/SYNCGATE_JWKS_URL: %w", err)
	}
	g.verifier = verifier
	defer func() {
		if err != nil {
			verifier.Close()
		}
	}()
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
	// One history reader, so the budget of history reads is node-wide.
	history := backplane.NewHistoryReader(g.bp, backplane.HistoryReaderConfig{Budget: cfg.HistoryReadBudget, Metrics: m})
	// One engine for every transport: one connection limit, one drain.
	g.hub, err = hub.New(hub.Config{
		History:        history,
		Verifier:       verifier,
		MaxConnections: cfg.MaxConnections,
		OriginPatterns: cfg.AllowedOrigins,
		Logger:         log,
		Metrics:        m,
	}, g.bp)
	if err != nil {
		return nil, err
	}
	g.sio, err = socketio.New(g.hub, socketio.Config{})
	if err != nil {
		return nil, err
	}
	if err := g.hub.Start(ctx); err != nil {
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
		for pattern, h := range devHandlers(g.bp, verifier) {
			extra[pattern] = h
		}
	}
	handler := server.Handler(server.Config{
		Hub:             g.hub,
		SocketIO:        g.sio,
		SSE:             sse.New(g.hub, sse.Config{KeepAlive: cfg.SSEKeepAlive}),
		Publisher:       g.bp,
		Ready:           ready,
		Keys:            auth.ParseKeys(cfg.PublishKeys),
		Metrics:         m,
		MetricsSeparate: cfg.MetricsAddr != "",
		Extra:           extra,
		Logger:          log,
	})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on SYNCGATE_ADDR %q: %w", cfg.Addr, err)
	}
	// Connections that have not authenticated are bounded; the handlers
	// release a connection once its token or publish key checked out.
	gate := cfg.Edge.NewListener(ln)
	g.ln = gate
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "syncgate_unauthenticated_connections",
			Help: "Connections open on the client address that have not authenticated (bounded by SYNCGATE_MAX_UNAUTHENTICATED).",
		}, func() float64 { return float64(gate.Pending()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "syncgate_unauthenticated_refused_total",
			Help: "Connections answered 503 at accept because SYNCGATE_MAX_UNAUTHENTICATED were pending.",
		}, func() float64 { return float64(gate.Refused()) }),
	)
	g.srv = cfg.Edge.Server(newOriginLog(cfg.AllowedOrigins, log).wrap(handler), slog.NewLogLogger(log.Handler(), slog.LevelWarn))
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
		// The same timeouts, without the bound: this address is not for
		// clients. pprof's profile must fit in SYNCGATE_HTTP_WRITE_TIMEOUT.
		g.metrics = cfg.Edge.Server(mux, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
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
	g.log.Info("draining (signal again to exit at once)", "grace", g.cfg.ShutdownGrace, "connections", g.hub.Connections())
	dctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownGrace+5*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- g.hub.Drain(dctx, g.cfg.ShutdownGrace) }()
	// Stop accepting; in-flight publish requests finish.
	if err := g.srv.Shutdown(dctx); err != nil {
		g.log.Warn("http shutdown", "err", err)
	}
	if err := <-drained; err != nil {
		g.log.Warn("drain cut short", "err", err)
	}
	if g.metrics != nil {
		_ = g.metrics.Shutdown(dctx)
	}
	err := g.bp.Close()
	g.verifier.Close()
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

  Or as Server-Sent Events (curl, or new EventSource(url + '&token=…')):
    curl -N 'http://%[1]s/v1/sse?sub=demo/todos' -H 'Authorization: Bearer %[2]s'

  Publish:
    curl -sS -X POST http://%[1]s/v1/publish \
      -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' \
      -d '{"type":"document:created","project":"demo","collection":"todos","documentId":"t1","document":{"title":"Hello"}}'

  More client tokens (signed with this node's generated secret):
    SYNCGATE_JWT_SECRET=%[4]s \
      go run ./cmd/gateway token --sub alice --projects demo --ttl 1h

  Set SYNCGATE_JWT_SECRET (or SYNCGATE_JWKS_URL, or SYNCGATE_AUTH_URL for a
  webhook) and SYNCGATE_PUBLISH_KEYS to run for real.
  Ctrl-C drains for %[5]s (SYNCGATE_SHUTDOWN_GRACE); a second Ctrl-C exits at once.

`, addr, token, key, cfg.JWTSecret, cfg.ShutdownGrace)
}
