package socketio

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// Engine.IO's HTTP error answers, which clients report as connect_error.
const (
	eioErrTransportUnknown = 0
	eioErrSessionUnknown   = 1
	eioErrBadMethod        = 2
	eioErrBadRequest       = 3
	eioErrUnsupported      = 5
)

func engineError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg})
}

// ServeHTTP serves /socket.io/: Engine.IO v4 over WebSocket only. Polling
// (the transport every other request asks for) gets Engine.IO's
// "Transport unknown" answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("EIO") != "4":
		engineError(w, http.StatusBadRequest, eioErrUnsupported, "Unsupported protocol version: syncgate speaks Engine.IO 4 (socket.io-client 3 and 4)")
		return
	case q.Get("transport") != "websocket":
		engineError(w, http.StatusBadRequest, eioErrTransportUnknown, "Transport unknown: syncgate accepts only the websocket transport (set transports: ['websocket'])")
		return
	case q.Get("sid") != "":
		engineError(w, http.StatusBadRequest, eioErrSessionUnknown, "Session ID unknown: syncgate does not upgrade from polling")
		return
	case r.Method != http.MethodGet:
		engineError(w, http.StatusBadRequest, eioErrBadMethod, "Bad handshake method")
		return
	case !strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		engineError(w, http.StatusBadRequest, eioErrBadRequest, "Bad request: a WebSocket upgrade is required")
		return
	}
	h := s.h
	cfg := h.Config()
	if h.Draining() {
		http.Error(w, "node is draining, reconnect to another", http.StatusServiceUnavailable)
		return
	}
	token := auth.BearerToken(r.Header.Get("Authorization"))
	if token == "" {
		token = q.Get("token")
	}
	sock, err := wsconn.Accept(w, r, wsconn.Config{
		OriginPatterns: cfg.OriginPatterns,
		ReadLimit:      cfg.MaxMessageBytes,
		StallLimit:     cfg.WriteTimeout,
		Metrics:        cfg.Metrics,
	})
	if err != nil {
		s.log.Debug("websocket upgrade refused", "err", err, "remote", r.RemoteAddr)
		return
	}
	sid := randomID()
	sess, err := h.Register(auth.WithTransport(edge.Detach(r.Context()), auth.TransportSocketIO), hub.SessionConfig{
		Transport:  hub.TransportSocketIO,
		ID:         sid,
		Overhead:   itemOverhead,
		Heartbeat:  s.cfg.PingInterval,
		AuthReason: "no Socket.IO CONNECT within " + cfg.AuthTimeout.String(),
	})
	if err != nil {
		sock.Refuse(int(hub.RefusalCode(err)))
		return
	}
	t := &transport{sock: sock, abort: sess.Abort(), pingInterval: s.cfg.PingInterval, pingTimeout: s.cfg.PingTimeout,
		written: make(map[subKey]backplane.Offset)}
	t.lastPong.Store(time.Now().UnixNano())
	c := &conn{s: s, h: h, sess: sess, sock: sock, token: token, lastPong: &t.lastPong}
	sess.Attach(t)
	sess.Send(hub.Frame{Data: encodeOpen(sid, s.cfg.PingInterval.Milliseconds(), s.cfg.PingTimeout.Milliseconds(), cfg.MaxMessageBytes)})
	// The connection is served on a goroutine of its own so that this one
	// returns: net/http then frees its per-request state and its deep
	// stack, which an idle connection would otherwise hold for its whole
	// life. Whatever ends the connection, a panic included, Finish
	// releases its subscriptions and timers, and the socket is released
	// and counted.
	go func() {
		defer sock.Finish()
		defer sess.Finish()
		sock.Serve(c.step)
	}()
}

// step reads and handles one Engine.IO packet on a goroutine that ends
// with it (Session.Handle); false ends the reader. The reader goroutine
// only waits: between packets in Socket.Serve, at the top of its stack,
// so an idle connection's reader keeps the smallest stack.
func (c *conn) step() bool {
	ok := false
	return c.sess.Handle(func() { ok = c.next() }) && ok
}

// next reads one Engine.IO packet and handles it; false ends the reader.
func (c *conn) next() bool {
	typ, data, err := c.sock.Next()
	switch {
	case err != nil:
		return false
	case typ == 0:
		return true // a WebSocket ping or pong only
	case typ != wsconn.MessageText:
		if c.skipBinary > 0 {
			c.skipBinary-- // an attachment of a refused binary packet
			return true
		}
		c.protocolError("a binary frame outside a binary packet")
		return false
	}
	if len(data) == 0 {
		c.protocolError("an empty frame")
		return false
	}
	switch data[0] {
	case eioPong:
		c.lastPong.Store(time.Now().UnixNano())
	case eioPing:
		c.send(append([]byte{eioPong}, data[1:]...))
	case eioMessage:
		if !c.onPacket(data[1:]) {
			c.waitClosed()
			return false
		}
	case eioClose:
		return false
	case eioNoop, eioUpgrade:
	default:
		c.protocolError("an unknown Engine.IO packet type")
		return false
	}
	return true
}

func (c *conn) protocolError(what string) {
	c.s.clientMessage("invalid")
	c.sess.Log().Debug("protocol error", "what", what)
	c.sess.Close(hub.CloseProtocolError, "protocol error: "+what, false)
	c.waitClosed()
}

// waitClosed lets the writer finish its close handshake, discarding reads.
func (c *conn) waitClosed() {
	for {
		if _, _, err := c.sock.Read(); err != nil {
			return
		}
	}
}

// onPacket handles one Socket.IO packet; false ends the read loop.
func (c *conn) onPacket(b []byte) bool {
	p, err := decodePacket(b)
	if err != nil {
		c.s.clientMessage("invalid")
		if !c.joined {
			c.sess.Close(hub.CloseProtocolError, truncate(err.Error(), 120), false)
			return false
		}
		c.fail(p.ID, "", hub.CodeBadRequest, err.Error())
		return true
	}
	if p.Type == sioBinaryEvent || p.Type == sioBinaryAck {
		c.s.clientMessage("invalid")
		c.skipBinary += p.Attachments
		if c.skipBinary > maxAttachments {
			c.sess.Close(hub.CloseProtocolError, "too many binary attachments", false)
			return false
		}
		if c.joined && p.Type == sioBinaryEvent {
			c.fail(p.ID, "", hub.CodeBadRequest, "binary packets are not supported: send JSON")
		}
		return true
	}
	if p.Namespace != "/" {
		if p.Type == sioConnect {
			c.send(encodeConnectError(p.Namespace, hub.CodeNotFound, "Invalid namespace"))
		}
		return true
	}
	switch p.Type {
	case sioConnect:
		if !c.joined && !c.connect(p) {
			return false
		}
	case sioDisconnect:
		c.s.clientMessage("disconnect")
		c.sess.Close(hub.CloseNormal, "socket disconnected", true)
		return false
	case sioEvent:
		if c.joined {
			c.onEvent(p)
		}
	case sioAck:
		// syncgate never asks clients for acknowledgements.
	}
	return true
}

// connectAuth is the CONNECT payload: the app's auth object, plus pid and
// offset that socket.io-client adds when it tries to recover.
type connectAuth struct {
	Token  string `json:"token"`
	PID    string `json:"pid"`
	Offset string `json:"offset"`
}

// maxConnectFailures is how many failed Socket.IO CONNECTs (a bad auth
// payload, no token, a refused token) one connection may make: the last is
// answered with CONNECT_ERROR and then the connection is closed with 4001,
// so a socket cannot make thousands of token verifications a second until
// AuthTimeout. socket.io-client makes one CONNECT per connection, so an app
// never meets the limit.
const maxConnectFailures = 3

// connect authenticates the socket, restores a recovered session when the
// client asks for one, and answers CONNECT or CONNECT_ERROR. A failed CONNECT
// leaves the connection open for another try until AuthTimeout, at most
// maxConnectFailures times; false means the connection is closing.
func (c *conn) connect(p packet) bool {
	c.s.clientMessage("connect")
	a, token, err := c.connectToken(p)
	var claims *auth.Claims
	if err == nil {
		claims, err = c.h.Verify(c.sess.Context(), token)
		if err != nil {
			c.sess.Log().Info("socket.io connect refused", "reason", auth.Reason(err), "err", err)
			if code := auth.CloseCode(err); code != auth.CloseUnauthorized {
				// Closing (not CONNECT_ERROR) makes socket.io-client
				// reconnect: the webhook failed, the token may be good.
				c.sess.Close(hub.CloseCode(code), truncate(err.Error(), 120), false)
				return false
			}
			err = &connectError{hub.CodeUnauthorized, truncate(err.Error(), 200)}
		}
	}
	if err != nil {
		var ce *connectError
		errors.As(err, &ce)
		c.send(encodeConnectError("/", ce.code, ce.msg))
		c.connectFailures++
		if c.connectFailures >= maxConnectFailures {
			c.sess.Close(hub.CloseUnauthorized, strconv.Itoa(maxConnectFailures)+" failed CONNECT attempts", true)
			return false
		}
		return true
	}
	c.sess.Authenticate(claims)
	c.joined = true
	edge.Authenticated(c.sess.Context())

	socketID := randomID()
	if a.PID != "" && a.Offset != "" && len(a.PID) <= 64 {
		state, err := decodeState(a.Offset, c.h.Config().MaxSubscriptions)
		if err == nil && c.recover(state, encodeConnect(socketID, a.PID)) {
			c.sess.Log().Debug("socket.io session recovered", "user", claims.Subject, "subscriptions", len(state))
			return true
		}
		c.sess.Log().Debug("socket.io session not recovered", "err", err)
	}
	c.send(encodeConnect(socketID, randomID()))
	return true
}

// connectError is a refused CONNECT: the CONNECT_ERROR's code and message.
type connectError struct{ code, msg string }

func (e *connectError) Error() string { return e.msg }

// connectToken reads the CONNECT payload and picks the token: auth.token,
// else the upgrade request's.
func (c *conn) connectToken(p packet) (connectAuth, string, error) {
	var a connectAuth
	if p.Data != nil {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(p.Data, &raw); err != nil {
			return a, "", &connectError{hub.CodeBadRequest, "the auth payload must be an object"}
		}
		for name, dst := range map[string]*string{"token": &a.Token, "pid": &a.PID, "offset": &a.Offset} {
			if v, ok := raw[name]; ok && string(v) != "null" {
				if err := json.Unmarshal(v, dst); err != nil {
					return a, "", &connectError{hub.CodeBadRequest, "auth." + name + " must be a string"}
				}
			}
		}
	}
	token := a.Token
	if token == "" {
		token = c.token
	}
	if token == "" {
		err := &auth.TokenError{Reason: auth.ReasonMissing, Err: errors.New("no token: pass auth: {token} to io()")}
		c.h.AuthFailed(err)
		return a, "", &connectError{hub.CodeUnauthorized, err.Error()}
	}
	return a, token, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
