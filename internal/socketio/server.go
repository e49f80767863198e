package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/metrics"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// TokenVerifier checks a client token; *auth.Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*auth.Claims, error)
}

// Config configures a Server. A zero field means its documented default; the
// limits match the native /v1/ws endpoint's.
type Config struct {
	// Verifier checks client tokens. Required.
	Verifier TokenVerifier
	// MaxSubscriptions per connection (joined projects plus subscribed
	// collections); default 100.
	MaxSubscriptions int
	// MaxQueueBytes bounds a connection's outbound queue; a connection whose
	// queue would exceed it is closed with 4008. Default 8 MiB.
	MaxQueueBytes int
	// MaxPendingEvents bounds the live events buffered for one subscription
	// while its history is replayed; default 10,000.
	MaxPendingEvents int
	// MaxMessageBytes is the largest client frame, advertised as Engine.IO's
	// maxPayload; larger frames close the connection with 1009. Default 64 KiB.
	MaxMessageBytes int64
	// MaxConnections this node accepts before closing new ones with 1013;
	// 0 is no limit.
	MaxConnections int
	// AuthTimeout is how long a connection may stay without a successful
	// Socket.IO CONNECT; default 10s.
	AuthTimeout time.Duration
	// WriteTimeout bounds every socket write; default 10s.
	WriteTimeout time.Duration
	// PingInterval and PingTimeout are Engine.IO's heartbeat, advertised in
	// the handshake: the server pings every PingInterval and closes a
	// connection that has not answered within PingTimeout. Defaults 25s, 20s
	// (Socket.IO's).
	PingInterval time.Duration
	PingTimeout  time.Duration
	// OriginPatterns are the allowed browser origins, as for /v1/ws; empty
	// means same origin only, "*" every origin.
	OriginPatterns []string
	// History is the node's gate for history reads (recovery), shared with
	// the node's other transports so that its budget is node-wide;
	// default one of its own over the server's backplane, with the
	// default budget.
	History *backplane.HistoryReader
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *metrics.Metrics
}

func (c *Config) setDefaults() {
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 100
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 8 << 20
	}
	if c.MaxPendingEvents <= 0 {
		c.MaxPendingEvents = 10000
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 20 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is one node's Socket.IO endpoint: its connections and their
// subscriptions. It is a backplane.Receiver; the gateway starts the backplane
// with backplane.Fanout(hub, server).
type Server struct {
	cfg    Config
	bp     backplane.Backplane
	log    *slog.Logger
	m      *metrics.Metrics
	shards [numShards]shard
	guard  wsconn.Guard

	mu       sync.Mutex // guards conns and draining
	conns    map[*conn]struct{}
	draining bool
	wg       sync.WaitGroup // one per live connection
}

var _ backplane.Receiver = (*Server)(nil)

// New returns a Server that serves subscriptions from bp.
func New(cfg Config, bp backplane.Backplane) (*Server, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("socketio: Config.Verifier is required")
	}
	if bp == nil {
		return nil, errors.New("socketio: a backplane is required")
	}
	cfg.setDefaults()
	if cfg.History == nil {
		cfg.History = backplane.NewHistoryReader(bp, backplane.HistoryReaderConfig{Metrics: cfg.Metrics})
	}
	s := &Server{cfg: cfg, bp: bp, log: cfg.Logger.With("endpoint", "socket.io"), m: cfg.Metrics, conns: make(map[*conn]struct{})}
	s.guard = wsconn.Guard{Log: s.log, Metrics: cfg.Metrics, Transport: wsconn.TransportSocketIO}
	for i := range s.shards {
		s.shards[i].streams = make(map[backplane.Stream][]*subscription)
	}
	return s, nil
}

// message is one event encoded once per node for each kind of subscription.
type message struct {
	off  backplane.Offset
	aud  *syncgate.Audience
	ts   time.Time
	data [2][]byte // by kindIndex: `42["name",{payload}` without the closing bracket
}

func kindIndex(k kind) int {
	if k == kindProject {
		return 0
	}
	return 1
}

func newMessage(ev *syncgate.Event, project, collection bool) (*message, error) {
	off, err := backplane.ParseOffset(ev.Offset)
	if err != nil {
		return nil, err
	}
	m := &message{off: off, aud: ev.Audience, ts: ev.Timestamp}
	if project {
		m.data[kindIndex(kindProject)] = encodeFor(kindProject, ev)
	}
	if collection {
		m.data[kindIndex(kindCollection)] = encodeFor(kindCollection, ev)
	}
	return m, nil
}

// Receive implements backplane.Receiver: encode once per kind, enqueue to
// every subscriber. It never blocks.
func (s *Server) Receive(st backplane.Stream, ev *syncgate.Event) {
	subs := s.shard(st).subscribers(st)
	if len(subs) == 0 {
		return
	}
	var project, collection bool
	for _, sub := range subs {
		if sub.key.kind == kindProject {
			project = true
		} else {
			collection = true
		}
	}
	m, err := newMessage(ev, project, collection)
	if err != nil {
		s.log.Warn("dropping undeliverable event from backplane", "stream", st.String(), "err", err)
		if s.m != nil {
			s.m.EventsDropped.WithLabelValues(metrics.DropInvalid).Add(float64(len(subs)))
		}
		return
	}
	for _, sub := range subs {
		sub.conn.deliver(sub, m)
	}
}

// Reset implements backplane.Receiver. Socket.IO has no way to tell a live
// socket that it missed events, so every connection with a subscription to
// st that has not passed head is closed with 1012 (after writing what is
// queued; during a replay, when the replay ends); socket.io-client
// reconnects, its recovery fails, and it sees socket.recovered === false.
func (s *Server) Reset(st backplane.Stream, head string) {
	h, err := backplane.ParseOffset(head)
	for _, sub := range s.shard(st).subscribers(st) {
		if err != nil {
			sub.conn.requestClose(closeServiceRestart, "stream lost events, reconnect", true)
			continue
		}
		sub.conn.reset(sub, h)
	}
}

// Connections returns the number of open connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) register(c *conn) closeCode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return closeServiceRestart
	}
	if s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections {
		return closeTryAgainLater
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	if s.m != nil {
		s.m.Connections.WithLabelValues("socketio").Inc()
	}
	return 0
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if s.m != nil {
		s.m.Connections.WithLabelValues("socketio").Dec()
	}
	s.wg.Done()
}

// Draining reports whether Drain has begun.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Drain refuses new connections and closes every live one with 1012 after
// writing its queue, spread over most of grace (socket.io-client then
// reconnects, possibly to another node, and recovers). It returns when all
// connections are gone or ctx ends, after which the rest are cut at once.
func (s *Server) Drain(ctx context.Context, grace time.Duration) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	spread := grace * 8 / 10
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i, c := range conns {
		if d := time.Until(start.Add(spread * time.Duration(i) / time.Duration(len(conns)))); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		c.requestClose(closeServiceRestart, "service restart", true)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.sock.Cut()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Subscription index, sharded by stream. A stream's subscriber slice is
// copy-on-write, so Receive uses the slice it loaded without a lock.

const numShards = 64

var shardSeed = maphash.MakeSeed()

type shard struct {
	mu      sync.RWMutex
	streams map[backplane.Stream][]*subscription
}

func (s *Server) shard(st backplane.Stream) *shard {
	var mh maphash.Hash
	mh.SetSeed(shardSeed)
	mh.WriteString(st.Project)
	mh.WriteByte(0)
	mh.WriteString(st.Collection)
	return &s.shards[mh.Sum64()%numShards]
}

func (sh *shard) subscribers(st backplane.Stream) []*subscription {
	sh.mu.RLock()
	subs := sh.streams[st]
	sh.mu.RUnlock()
	return subs
}

func (sh *shard) add(sub *subscription) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Appending in place is safe: readers hold slices no longer than the
	// current one, and remove always builds a new array.
	sh.streams[sub.key.stream] = append(sh.streams[sub.key.stream], sub)
}

func (sh *shard) remove(sub *subscription) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.streams[sub.key.stream]
	i := slices.Index(old, sub)
	if i < 0 {
		return
	}
	if len(old) == 1 {
		delete(sh.streams, sub.key.stream)
		return
	}
	next := make([]*subscription, 0, len(old)-1)
	next = append(next, old[:i]...)
	sh.streams[sub.key.stream] = append(next, old[i+1:]...)
}

// randomID returns a fresh URL-safe id for Engine.IO sessions, sockets and
// recovery pids.
func randomID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
