package ws

import (
	"net/http"
	"strings"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// Subprotocol is the WebSocket subprotocol of the client protocol.
const Subprotocol = "syncgate.v1"

// Handler serves GET /v1/ws on a hub.
type Handler struct {
	h *hub.Hub
}

// New returns the /v1/ws handler of h.
func New(h *hub.Hub) *Handler { return &Handler{h: h} }

// ServeHTTP upgrades GET /v1/ws to the client protocol and serves the
// connection until it ends.
func (x *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := x.h
	cfg := h.Config()
	if h.Draining() {
		http.Error(w, "node is draining, reconnect to another", http.StatusServiceUnavailable)
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && !offersSubprotocol(r, Subprotocol) {
		http.Error(w, "the WebSocket subprotocol "+Subprotocol+" is required: send Sec-WebSocket-Protocol: "+Subprotocol, http.StatusBadRequest)
		return
	}
	token := auth.BearerToken(r.Header.Get("Authorization"))
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	sock, err := wsconn.Accept(w, r, wsconn.Config{
		Subprotocols:   []string{Subprotocol},
		OriginPatterns: cfg.OriginPatterns,
		ReadLimit:      cfg.MaxMessageBytes,
		StallLimit:     cfg.WriteTimeout,
		Metrics:        cfg.Metrics,
	})
	if err != nil {
		cfg.Logger.Debug("websocket upgrade refused", "err", err, "remote", r.RemoteAddr)
		return // Accept has answered the request
	}
	ctx := auth.WithTransport(edge.Detach(r.Context()), auth.TransportWS)
	sc := hub.SessionConfig{Transport: hub.TransportWS}
	if token != "" {
		sc.AuthDeadline = -1 // verified at once, bounded by the verifier
	} else {
		sc.AuthReason = "no auth message within " + cfg.AuthTimeout.String()
	}
	sess, err := h.Register(ctx, sc)
	if err != nil {
		sock.Refuse(int(hub.RefusalCode(err)))
		return
	}
	c := &conn{h: h, sess: sess, sock: sock}
	c.out = &transport{sock: sock, ping: sock.Ping, abort: sess.Abort(), pingEvery: cfg.PingInterval, timeout: cfg.WriteTimeout, ctx: sess.Context()}
	sess.Attach(c.out)
	// The connection is served on a goroutine of its own so that this one
	// returns: net/http then frees its per-request state (the request, its
	// headers, the 4 KiB read buffer) and the deep handler stack, which
	// idle connections would otherwise hold for their whole life. Whatever
	// ends it, a panic included, Finish releases its resources.
	go func() {
		defer sock.Finish()
		defer sess.Finish()
		c.serve(token)
	}()
}

// offersSubprotocol reports whether the upgrade request lists proto in
// Sec-WebSocket-Protocol.
func offersSubprotocol(r *http.Request, proto string) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) == proto {
				return true
			}
		}
	}
	return false
}
