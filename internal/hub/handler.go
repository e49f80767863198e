package hub

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/edge"
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
	token := auth.BearerToken(r.Header.Get("Authorization"))
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	hj := &smallReadBuffer{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		Subprotocols:    []string{Subprotocol},
		OriginPatterns:  h.cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		h.log.Debug("websocket upgrade refused", "err", err, "remote", r.RemoteAddr)
		return // Accept has answered the request
	}
	ws.SetReadLimit(h.cfg.MaxMessageBytes)
	ctx, cancel := context.WithCancel(auth.WithTransport(edge.Detach(r.Context()), auth.TransportWS))
	c := &conn{
		h:      h,
		id:     h.nodeID + "-" + strconv.FormatUint(h.nextID.Add(1), 10),
		ws:     ws,
		nc:     hj.nc,
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		subs:   make(map[backplane.Stream]*subscription),
	}
	c.log = h.log.With("conn", c.id)
	if code := h.register(c); code != 0 {
		cancel()
		_ = ws.Close(websocket.StatusCode(code), "node full or draining, try another")
		return
	}
	// The connection is served on a goroutine of its own so that this one
	// returns: net/http then frees its per-request state (the request, its
	// headers, the 4 KiB read buffer) and the deep handler stack, which
	// idle connections would otherwise hold for their whole life.
	go func() {
		defer h.unregister(c)
		defer cancel()
		c.serve(token)
	}()
}

// serve authenticates c and serves it until it ends.
func (c *conn) serve(token string) {
	h, ws := c.h, c.ws
	var authID []byte
	claims, err := c.authenticate(token, &authID)
	if err != nil {
		h.authFailed(err)
		c.log.Info("connection refused", "reason", auth.Reason(err), "err", err)
		_ = ws.Close(websocket.StatusCode(auth.CloseCode(err)), truncate(err.Error(), 120))
		return
	}
	c.mu.Lock()
	c.claims = claims
	edge.Authenticated(c.ctx)
	c.expiry = time.AfterFunc(time.Until(claims.ExpiresAt), func() {
		if code, reason := auth.RenewAtExpiry(c.ctx, &c.mu, &c.claims, &c.expiry); code != 0 {
			c.requestClose(CloseCode(code), reason, true)
		}
	})
	c.mu.Unlock()
	c.writer.Add(1)
	go c.writeLoop()
	c.send(encodeFrame(readyFrame{Op: "ready", ID: authID, Connection: c.id, User: claims.Subject, ExpiresAt: claims.ExpiresAt}))
	c.log.Debug("connection ready", "user", claims.Subject)

	c.readLoop()

	// Teardown: stop the writer, then end every subscription.
	c.mu.Lock()
	c.expiry.Stop()
	subs := make([]*subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	c.mu.Unlock()
	c.cancel()
	c.writer.Wait()
	for _, sub := range subs {
		c.endSubscription(sub, true)
	}
	ws.CloseNow()
}

// authenticate uses the upgrade request's token or else waits for the first
// message, which must be `auth`, for at most AuthTimeout.
func (c *conn) authenticate(token string, id *[]byte) (*auth.Claims, error) {
	if token == "" {
		timer := time.AfterFunc(c.h.cfg.AuthTimeout, func() {
			_ = c.ws.Close(websocket.StatusCode(CloseUnauthorized), "no auth message within "+c.h.cfg.AuthTimeout.String())
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// smallReadBuffer hands coder/websocket a 512-byte read buffer on hijack
// instead of net/http's 4 KiB one, which every connection would keep for
// its whole life: client frames are small, and a larger one is read
// straight from the socket past the buffer. Bytes net/http had already
// buffered are replayed first.
// It also keeps the socket, for write deadlines (see conn.write).
type smallReadBuffer struct {
	http.ResponseWriter
	nc net.Conn
}

func (w *smallReadBuffer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *smallReadBuffer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.nc = nc
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		nc = &prefixConn{Conn: nc, pending: bytes.Clone(b)}
	}
	return nc, bufio.NewReadWriter(bufio.NewReaderSize(nc, 512), brw.Writer), nil
}

// prefixConn reads pending before the connection itself.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
