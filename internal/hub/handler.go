package hub

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// Subprotocol is the WebSocket subprotocol of the client protocol.
const Subprotocol = "syncgate.v1"

// ServeHTTP upgrades GET /v1/ws to the client protocol and serves the
// connection until it ends.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	sock, err := wsconn.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{Subprotocol},
		OriginPatterns:  h.cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	}, wsconn.Config{StallLimit: h.cfg.WriteTimeout, Metrics: h.m})
	if err != nil {
		h.log.Debug("websocket upgrade refused", "err", err, "remote", r.RemoteAddr)
		return // Accept has answered the request
	}
	sock.WS.SetReadLimit(h.cfg.MaxMessageBytes)
	ctx, cancel := context.WithCancel(auth.WithTransport(edge.Detach(r.Context()), auth.TransportWS))
	c := &conn{
		h:      h,
		id:     h.nodeID + "-" + strconv.FormatUint(h.nextID.Add(1), 10),
		sock:   sock,
		ws:     sock.WS,
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		abort:  make(chan struct{}),
		subs:   make(map[backplane.Stream]*subscription),
	}
	c.log = h.log.With("conn", c.id)
	if code := h.register(c); code != 0 {
		cancel()
		sock.Close(websocket.StatusCode(code), "node full or draining, try another")
		sock.Finish()
		return
	}
	// The connection is served on a goroutine of its own so that this one
	// returns: net/http then frees its per-request state (the request, its
	// headers, the 4 KiB read buffer) and the deep handler stack, which
	// idle connections would otherwise hold for their whole life. Whatever
	// ends it, a panic included, teardown releases its resources.
	go func() {
		defer h.unregister(c)
		defer c.teardown()
		h.guard.Run("reader", func() { c.serve(token) }, c.fatal)
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

// serve authenticates c and serves it until it ends; teardown follows.
func (c *conn) serve(token string) {
	h := c.h
	var authID []byte
	claims, err := c.authenticate(token, &authID)
	if err != nil {
		h.authFailed(err)
		c.log.Info("connection refused", "reason", auth.Reason(err), "err", err)
		c.sock.Close(websocket.StatusCode(auth.CloseCode(err)), err.Error())
		return
	}
	c.mu.Lock()
	c.claims = claims
	edge.Authenticated(c.ctx)
	c.expiry = time.AfterFunc(time.Until(claims.ExpiresAt), func() {
		h.guard.Run("expiry timer", func() {
			if code, reason := auth.RenewAtExpiry(c.ctx, &c.mu, &c.claims, &c.expiry); code != 0 {
				c.requestClose(CloseCode(code), reason, true)
			}
		}, c.fatal)
	})
	c.writerStarted = true
	c.mu.Unlock()
	c.writer.Add(1)
	go func() {
		defer c.writer.Done()
		defer c.cancel()
		h.guard.Run("writer", c.writeLoop, c.writerPanicked)
	}()
	c.send(encodeFrame(readyFrame{Op: "ready", ID: authID, Connection: c.id, User: claims.Subject, ExpiresAt: claims.ExpiresAt}))
	c.log.Debug("connection ready", "user", claims.Subject)

	c.readLoop()
}

// teardown runs when the reader ends, however it ends: a close the writer
// is making is let finish (bounded by the stall limit and the close
// handshake's timeouts), then every subscription ends and the socket is
// released and counted.
func (c *conn) teardown() {
	c.mu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	code, reason, started := c.closeCode, c.closeReason, c.writerStarted
	c.mu.Unlock()
	if code == 0 || !started {
		c.cancel()
	}
	c.writer.Wait()
	c.cancel()
	c.mu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	c.mu.Unlock()
	for _, sub := range subs {
		c.endSubscription(sub, true)
	}
	if code != 0 && !started {
		c.sock.Close(websocket.StatusCode(code), reason) // e.g. a panic before the writer ran
	}
	c.sock.Finish()
}

// fatal closes c with 1011 after a panic in one of its goroutines other
// than the writer; the writer sends the close.
func (c *conn) fatal() {
	c.requestClose(CloseInternalError, "internal error", false)
}

// writerPanicked closes c with 1011 from the writer goroutine, whose loop
// is gone; the reader then ends and teardown runs.
func (c *conn) writerPanicked() {
	c.requestClose(CloseInternalError, "internal error", false)
	c.sock.Close(websocket.StatusCode(CloseInternalError), "internal error")
}

// authenticate uses the upgrade request's token or else waits for the first
// message, which must be `auth`, for at most AuthTimeout.
func (c *conn) authenticate(token string, id *[]byte) (*auth.Claims, error) {
	if token == "" {
		timer := time.AfterFunc(c.h.cfg.AuthTimeout, func() {
			c.h.guard.Run("auth timer", func() {
				c.sock.Close(websocket.StatusCode(CloseUnauthorized), "no auth message within "+c.h.cfg.AuthTimeout.String())
			}, nil)
		})
		typ, data, err := c.ws.Read(c.ctx)
		stopped := timer.Stop()
		if err != nil {
			if !stopped {
				return nil, &auth.TokenError{Reason: auth.ReasonMissing, Err: errors.New("no auth message in time")}
			}
			return nil, &auth.TokenError{Reason: auth.ReasonMissing, Err: err}
		}
		req, err := decodeRequest(data)
		if typ != websocket.MessageText || err != nil || req.Op != opAuth {
			return nil, &auth.TokenError{Reason: auth.ReasonMissing, Err: errors.New("the first message must be {\"op\":\"auth\",\"token\":...}")}
		}
		c.h.clientMessage(opAuth)
		token, *id = req.Token, req.ID
	}
	return c.h.cfg.Verifier.Verify(c.ctx, token)
}

// readLoop reads client messages until the connection ends.
func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			if s := websocket.CloseStatus(err); s == -1 && !errors.Is(err, context.Canceled) {
				c.log.Debug("read ended", "err", err)
			}
			return
		}
		if typ != websocket.MessageText {
			c.h.clientMessage("invalid")
			c.requestClose(CloseProtocolError, "binary frames are not part of syncgate.v1", false)
			c.waitClosed()
			return
		}
		req, err := decodeRequest(data)
		if err != nil {
			c.h.clientMessage("invalid")
			c.sendError(req.ID, codeBadRequest, err.Error())
			continue
		}
		c.h.clientMessage(req.Op)
		switch req.Op {
		case opAuth:
			c.refresh(req)
		case opSubscribe:
			c.subscribe(req)
		case opUnsubscribe:
			c.unsubscribe(req)
		case opPing:
			c.send(encodeFrame(pongFrame{Op: "pong", ID: req.ID}))
		}
	}
}

// waitClosed lets the writer finish its close handshake, reading (and
// discarding) until the socket ends.
func (c *conn) waitClosed() {
	for {
		if _, _, err := c.ws.Read(c.ctx); err != nil {
			return
		}
	}
}

func (h *Hub) clientMessage(op string) {
	if h.m != nil {
		h.m.ClientMessages.WithLabelValues(op).Inc()
	}
}
