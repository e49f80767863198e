package socketio

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/hub"
)

// Config configures a Server: Engine.IO's own settings. Everything else
// (limits, timeouts, origins, the verifier) is the hub's, shared with the
// node's other transports. A zero field means its documented default.
type Config struct {
	// PingInterval and PingTimeout are Engine.IO's heartbeat, advertised in
	// the handshake: the server pings every PingInterval and closes with
	// 4008 a connection that has not answered within PingTimeout. Defaults
	// the hub's PingInterval (25s) and 20s (Socket.IO's).
	PingInterval time.Duration
	PingTimeout  time.Duration
}

// Server is the node's Socket.IO endpoint, a transport of the hub: its
// sessions are the hub's, counted and drained with every other transport's.
type Server struct {
	h   *hub.Hub
	cfg Config
	log *slog.Logger
}

// The encodings of the two kinds of subscription: the start of the EVENT
// packet that delivers an event, `42["name",{payload}` without the closing
// bracket (the writer appends the recovery state), made once per node.
var (
	encProject = hub.NewEncoding(func(ev *syncgate.Event) ([]byte, error) {
		return encodeFor(kindProject, ev), nil
	})
	encCollection = hub.NewEncoding(func(ev *syncgate.Event) ([]byte, error) {
		return encodeFor(kindCollection, ev), nil
	})
)

func encodingOf(k kind) hub.Encoding {
	if k == kindProject {
		return encProject
	}
	return encCollection
}

// New returns the Socket.IO endpoint of h.
func New(h *hub.Hub, cfg Config) (*Server, error) {
	if h == nil {
		return nil, errors.New("socketio: a hub is required")
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = h.Config().PingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 20 * time.Second
	}
	return &Server{h: h, cfg: cfg, log: h.Config().Logger.With("endpoint", "socket.io")}, nil
}

// randomID returns a fresh URL-safe id for Engine.IO sessions, sockets and
// recovery pids.
func randomID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
