package ws

import (
	"encoding/json"
	"errors"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/edge"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// conn is the reader side of one /v1/ws connection: it decodes client
// frames into calls on its session.
type conn struct {
	h    *hub.Hub
	sess *hub.Session
	sock *wsconn.Socket
	out  *transport
}

// subTag is what the protocol keeps about a subscription (hub.Subscription.Tag).
type subTag struct {
	id     json.RawMessage
	header []byte // `{"op":"events",...,"events":[`
}

func tagOf(sub *hub.Subscription) *subTag { return sub.Tag().(*subTag) }

// serve authenticates c and serves it until it ends. The reader
// goroutine only waits: between messages in Socket.Serve, at the top of
// its stack, and while a message is read and handled (on a goroutine that
// ends with it, Session.Handle), for that; so an idle connection's reader
// keeps the smallest stack.
func (c *conn) serve(token string) {
	ok := false
	if c.sess.Handle(func() { ok = c.begin(token) }) && ok {
		c.sock.Serve(c.step)
	}
}

// begin authenticates: with the token of the upgrade request, else with
// the first message. It reports whether messages are to be read next.
func (c *conn) begin(token string) bool {
	var authID []byte
	var err error
	if token == "" {
		token, authID, err = c.readAuth()
	}
	if !c.start(token, authID, err) {
		c.waitClosed()
		return false
	}
	return true
}

// step reads and handles one message with Session.Handle; false ends the
// reader.
func (c *conn) step() bool {
	ok := false
	return c.sess.Handle(func() { ok = c.next() }) && ok
}

// start verifies the token (or reports err, the failed auth message) and
// answers `ready`; it reports false when the connection is refused (the
// close is decided).
func (c *conn) start(token string, authID []byte, err error) bool {
	var claims *auth.Claims
	if err == nil {
		claims, err = c.h.Verify(c.sess.Context(), token)
	}
	if err != nil {
		c.sess.Log().Info("connection refused", "reason", auth.Reason(err), "err", err)
		c.sess.Close(hub.CloseCode(auth.CloseCode(err)), err.Error(), true)
		return false
	}
	c.sess.Authenticate(claims)
	edge.Authenticated(c.sess.Context())
	c.send(readyFrame{Op: "ready", ID: authID, Connection: c.sess.ID(), User: claims.Subject, ExpiresAt: claims.ExpiresAt})
	c.sess.Log().Debug("connection ready", "user", claims.Subject)
	return true
}

// readAuth waits for the first message, which must be `auth` when the
// upgrade request carried no token; the session closes a connection that
// sends none within AuthTimeout.
func (c *conn) readAuth() (token string, id []byte, err error) {
	missing := func(why string) error {
		err := &auth.TokenError{Reason: auth.ReasonMissing, Err: errors.New(why)}
		c.h.AuthFailed(err)
		return err
	}
	typ, data, err := c.sock.Read()
	if err != nil {
		return "", nil, missing("no auth message in time")
	}
	req, err := decodeRequest(data)
	if typ != wsconn.MessageText || err != nil || req.Op != opAuth {
		return "", nil, missing("the first message must be {\"op\":\"auth\",\"token\":...}")
	}
	c.h.ClientMessage(opAuth)
	return req.Token, req.ID, nil
}

// next reads one client message and handles it; false ends the reader.
func (c *conn) next() bool {
	// The Read ends when the socket does, and every end of the session
	// closes or cuts the socket (the writer's Close, Drain's cut, Finish).
	typ, data, err := c.sock.Next()
	if err != nil {
		if wsconn.CloseStatus(err) == -1 {
			c.sess.Log().Debug("read ended", "err", err)
		}
		return false
	}
	if typ == 0 {
		return true // a ping or pong only
	}
	if c.handle(typ, data) {
		c.waitClosed()
		return false
	}
	return true
}

// handle handles one client message; it reports true when the connection
// is closing (a binary frame) and only the close handshake is left.
func (c *conn) handle(typ wsconn.MessageType, data []byte) bool {
	if typ != wsconn.MessageText {
		c.h.ClientMessage("invalid")
		c.sess.Close(hub.CloseProtocolError, "binary frames are not part of syncgate.v1", false)
		return true
	}
	req, err := decodeRequest(data)
	if err != nil {
		c.h.ClientMessage("invalid")
		c.sendError(req.ID, hub.CodeBadRequest, err.Error())
		return false
	}
	c.h.ClientMessage(req.Op)
	switch req.Op {
	case opAuth:
		c.refresh(req)
	case opSubscribe:
		c.subscribe(req)
	case opUnsubscribe:
		c.unsubscribe(req)
	case opPing:
		c.send(pongFrame{Op: "pong", ID: req.ID})
	}
	return false
}

// waitClosed lets the writer finish its close handshake, reading (and
// discarding) until the socket ends.
func (c *conn) waitClosed() {
	for {
		if _, _, err := c.sock.Read(); err != nil {
			return
		}
	}
}

func (c *conn) send(frame any) {
	c.sess.Send(hub.Frame{Data: encodeFrame(frame)})
}

func (c *conn) sendError(id json.RawMessage, code, msg string) {
	c.send(errorFrame{Op: "error", ID: id, Code: code, Message: msg})
}

// fail answers a refused request with its error frame.
func (c *conn) fail(id json.RawMessage, err error) {
	var e *hub.Error
	if !errors.As(err, &e) {
		e = &hub.Error{Code: hub.CodeInternal, Message: err.Error()}
	}
	if e.Code == hub.CodeDuplicate {
		e = &hub.Error{Code: hub.CodeBadRequest, Message: e.Message}
	}
	c.sendError(id, e.Code, e.Message)
}

// subscribe handles the subscribe op: `subscribed` (the head, recovered),
// then the replay, then live events.
func (c *conn) subscribe(req request) {
	if req.ID == nil {
		c.sendError(nil, hub.CodeBadRequest, "subscribe needs an id")
		return
	}
	s := backplane.Stream{Project: req.Project, Collection: req.Collection}
	sub, opened, err := c.sess.Open(hub.OpenRequest{
		Key: hub.SubKey{Stream: s}, Since: req.Since, Encoding: hub.JSON,
		Tag: &subTag{id: req.ID, header: eventsHeader(s.Project, s.Collection)},
	})
	if err != nil {
		c.fail(req.ID, err)
		return
	}
	c.sess.Begin([]hub.Frame{{Data: encodeFrame(subscribedFrame{Op: "subscribed", ID: req.ID, Project: s.Project,
		Collection: s.Collection, Offset: opened.Head.String(), Recovered: opened.Recovered})}}, sub)
}

// unsubscribe handles the unsubscribe op.
func (c *conn) unsubscribe(req request) {
	s := backplane.Stream{Project: req.Project, Collection: req.Collection}
	if err := syncgate.ValidateSubscription(s.Project, s.Collection); err != nil {
		c.sendError(req.ID, hub.CodeBadRequest, err.Error())
		return
	}
	sub := c.sess.Lookup(hub.SubKey{Stream: s})
	if sub == nil {
		c.sendError(req.ID, hub.CodeNotFound, "not subscribed to "+s.String())
		return
	}
	c.sess.End(sub)
	c.send(unsubscribedFrame{Op: "unsubscribed", ID: req.ID, Project: s.Project, Collection: s.Collection})
}

// refresh handles `auth` on a live connection: same user, new expiry and
// grants; subscriptions the new token no longer allows are ended.
func (c *conn) refresh(req request) {
	claims, revoked, err := c.sess.Refresh(req.Token)
	if err != nil {
		var e *hub.Error
		if errors.As(err, &e) && e.Code == hub.CodeForbidden {
			c.sess.Close(hub.CloseForbidden, e.Message, true)
			return
		}
		c.fail(req.ID, err)
		return
	}
	c.send(readyFrame{Op: "ready", ID: req.ID, Connection: c.sess.ID(), User: claims.Subject, ExpiresAt: claims.ExpiresAt})
	for _, sub := range revoked {
		s, id := sub.Stream(), tagOf(sub).id
		c.sendError(id, hub.CodeForbidden, "refreshed token no longer grants "+s.String())
		c.send(unsubscribedFrame{Op: "unsubscribed", ID: id, Project: s.Project, Collection: s.Collection})
	}
}
