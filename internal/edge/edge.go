package edge

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config sets the limits of the HTTP edge. A zero field means its default;
// a negative one is refused by Validate.
type Config struct {
	// HeaderTimeout bounds reading a request's headers; default 10s.
	HeaderTimeout time.Duration
	// BodyTimeout is how much longer than HeaderTimeout a request has to be
	// read whole, body included; default 30s.
	BodyTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response: reading the body, the handler (a publish waits for
	// the backplane) and writing the answer; default 60s. It must exceed
	// BodyTimeout.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request;
	// default 90s (longer than the 60s of common load balancers, so that
	// they, not the gateway, close idle connections first).
	IdleTimeout time.Duration
	// MaxUnauthenticated bounds the connections open at once that have
	// not authenticated; default 1000.
	MaxUnauthenticated int
}

// Defaults of Config.
const (
	DefaultHeaderTimeout      = 10 * time.Second
	DefaultBodyTimeout        = 30 * time.Second
	DefaultWriteTimeout       = 60 * time.Second
	DefaultIdleTimeout        = 90 * time.Second
	DefaultMaxUnauthenticated = 1000
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeaderTimeout, DefaultHeaderTimeout)
	def(&c.BodyTimeout, DefaultBodyTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxUnauthenticated == 0 {
		c.MaxUnauthenticated = DefaultMaxUnauthenticated
	}
	return c
}

// Validate refuses negative values, naming the field and the value, and a
// WriteTimeout that would cut off requests the BodyTimeout allows.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"HeaderTimeout", c.HeaderTimeout}, {"BodyTimeout", c.BodyTimeout}, {"WriteTimeout", c.WriteTimeout}, {"IdleTimeout", c.IdleTimeout}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("edge: %s is %s, want a positive duration", f.name, f.d))
		}
	}
	if c.MaxUnauthenticated < 0 {
		errs = append(errs, fmt.Errorf("edge: MaxUnauthenticated is %d, want a positive number", c.MaxUnauthenticated))
	}
	if errs != nil {
		return errors.Join(errs...)
	}
	if d := c.WithDefaults(); d.WriteTimeout <= d.BodyTimeout {
		return fmt.Errorf("edge: WriteTimeout %s must exceed BodyTimeout %s, or bodies read in time get no answer", d.WriteTimeout, d.BodyTimeout)
	}
	return nil
}

// Server returns an HTTP server for h with c's timeouts. Its ConnContext
// lets handlers reach the connection a Listener accepted (Authenticated).
func (c Config) Server(h http.Handler, errorLog *log.Logger) *http.Server {
	c = c.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.HeaderTimeout,
		ReadTimeout:       c.HeaderTimeout + c.BodyTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          errorLog,
		ConnContext:       connContext,
	}
}

// Listener counts the connections it accepted that have not authenticated
// and refuses new ones beyond its limit.
type Listener struct {
	net.Listener
	max     int64
	pending atomic.Int64
	refused atomic.Uint64
}

// NewListener wraps ln with the bound of c.MaxUnauthenticated.
func (c Config) NewListener(ln net.Listener) *Listener {
	return &Listener{Listener: ln, max: int64(c.WithDefaults().MaxUnauthenticated)}
}

// Pending is the number of open connections that have not authenticated.
func (l *Listener) Pending() int { return int(l.pending.Load()) }

// Refused is the number of connections refused because Pending was at the
// limit.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// refusal is written to a connection refused at accept. It is written
// before the request is read, so a client may see a reset instead.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: 58\r\n\r\ntoo many connections waiting to authenticate, retry later\n"

// Accept returns the next connection within the limit; connections beyond
// it are answered 503 and closed here.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.acquire() {
			return &conn{Conn: nc, l: l}, nil
		}
		l.refused.Add(1)
		// A fresh socket's send buffer is empty: the write does not block,
		// and the deadline makes sure of it.
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write([]byte(refusal))
		_ = nc.Close()
	}
}

func (l *Listener) acquire() bool {
	for {
		n := l.pending.Load()
		if n >= l.max {
			return false
		}
		if l.pending.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// conn is an accepted connection; it holds a pending slot until it
// authenticates or closes.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) release() { c.once.Do(func() { c.l.pending.Add(-1) }) }

// Close releases the connection's slot if it still holds one.
func (c *conn) Close() error {
	c.release()
	return c.Conn.Close()
}

// NetConn returns the accepted connection itself, for code that needs the
// TCP socket under the wrapper (wsconn inspects its send buffer).
func (c *conn) NetConn() net.Conn { return c.Conn }

// CloseWrite keeps net/http's half-close before closing a connection it
// answered with an error (so the answer is not lost to a reset).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SyscallConn is the socket's raw connection, for writers that go to the
// kernel directly (wsconn's batch flush); the wrapper adds nothing to
// writes.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("edge: the connection has no raw socket")
}

type connKey struct{}

func connContext(ctx context.Context, nc net.Conn) context.Context {
	if c, ok := nc.(*conn); ok {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

// Authenticated marks the connection that ctx (a request's context, or one
// from Detach) belongs to as authenticated, so it no longer counts against
// MaxUnauthenticated. It is idempotent, and does nothing for a context from
// another server.
func Authenticated(ctx context.Context) {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		c.release()
	}
}

// Detach returns a context that carries only the connection of request
// context ctx, for a handler that serves a connection past its request
// (a WebSocket) and authenticates it later: neither the request's
// cancellation nor its other values are kept.
func Detach(ctx context.Context) context.Context {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		return context.WithValue(context.Background(), connKey{}, c)
	}
	return context.Background()
}

// Stream exempts a long-lived response (Server-Sent Events) from the
// server's body and write timeouts. Call it once the request has
// authenticated, before streaming; from then on the stream's own liveness
// (a keep-alive written with a deadline of its own) must bound it.
func Stream(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	return errors.Join(rc.SetReadDeadline(time.Time{}), rc.SetWriteDeadline(time.Time{}))
}
