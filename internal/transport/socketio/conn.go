package socketio

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wsconn"
)

// itemOverhead approximates the state string appended to an event; the
// session counts it for every queued item.
const itemOverhead = 64

// conn is the reader side of one Engine.IO connection with at most one
// Socket.IO socket (the namespace "/"): it decodes packets into calls on
// its session. Everything here is the reader's own.
type conn struct {
	s        *Server
	h        *hub.Hub
	sess     *hub.Session
	sock     *wsconn.Socket
	token    string        // from the upgrade request, used when CONNECT has none
	lastPong *atomic.Int64 // the transport's, written here
	joined   bool          // a Socket.IO CONNECT succeeded

	skipBinary      int
	connectFailures int
}

// send queues a ready frame.
func (c *conn) send(frame []byte) {
	c.sess.Send(hub.Frame{Data: frame})
}

// sendState queues a frame (possibly none) with a recovery-state change
// the writer applies at its place in the queue.
func (c *conn) sendState(frame []byte, st *stateChange) {
	c.sess.Send(hub.Frame{Data: frame, Meta: st})
}

// reply answers a client event: an ack when the client asked for one.
func (c *conn) reply(ackID int64, body any) {
	if ackID >= 0 {
		c.send(encodeAck(ackID, body))
	}
}

// fail answers a failed client event: a failed ack when the client asked for
// one, else an `error` event.
func (c *conn) fail(ackID int64, event, code, msg string) {
	if ackID >= 0 {
		c.send(encodeAck(ackID, struct {
			OK    bool      `json:"ok"`
			Error errorBody `json:"error"`
		}{false, errorBody{Code: code, Message: msg}}))
		return
	}
	c.send(encodeEvent(evError, errorBody{Code: code, Message: msg, Event: event}))
}

// failWith answers a failed client event with the engine's refusal.
func (c *conn) failWith(ackID int64, event string, err error) {
	var e *hub.Error
	if !errors.As(err, &e) {
		e = &hub.Error{Code: hub.CodeInternal, Message: err.Error()}
	}
	c.fail(ackID, event, e.Code, e.Message)
}

// recover restores the subscriptions a reconnecting client names in its
// recovery state, replaying what it missed, and reports whether every one
// could be restored completely. When not, nothing is restored: the client
// gets a fresh session, as with Socket.IO, and rejoins. The CONNECT frame
// is queued before the replayed events, and every restored subscription
// enters the state before the first of them, so a client cut off
// mid-replay still names them all.
func (c *conn) recover(state map[subKey]backplane.Offset, connectFrame []byte) bool {
	claims := c.sess.Claims()
	for k := range state {
		if claims.CanRead(k.Stream.Project, k.Stream.Collection) != nil {
			return false
		}
	}
	var subs []*hub.Subscription
	undo := func() {
		for _, sub := range subs {
			c.sess.End(sub)
		}
	}
	for k, since := range state {
		sub, opened, err := c.sess.Open(hub.OpenRequest{Key: k, Since: since.String(), Encoding: encodingOf(kind(k.Kind))})
		if err != nil {
			c.sess.Log().Debug("recovery failed", "stream", k.Stream.String(), "err", err)
			undo()
			return false
		}
		subs = append(subs, sub)
		if !opened.Recovered {
			undo()
			return false
		}
	}
	frames := make([]hub.Frame, 0, 1+len(subs))
	frames = append(frames, hub.Frame{Data: connectFrame})
	for _, sub := range subs {
		frames = append(frames, hub.Frame{Meta: &stateChange{op: opSet, key: sub.Key(), off: state[sub.Key()]}})
	}
	c.sess.Begin(frames, subs...)
	return true
}

// refresh handles the `auth` event: same user, new expiry and grants;
// subscriptions the new token no longer allows end.
func (c *conn) refresh(ackID int64, token string) {
	claims, revoked, err := c.sess.Refresh(token)
	if err != nil {
		c.failWith(ackID, evAuth, err)
		var e *hub.Error
		if errors.As(err, &e) && e.Code == hub.CodeForbidden {
			c.sess.Close(hub.CloseForbidden, e.Message, true)
		}
		return
	}
	for _, sub := range revoked {
		c.leftFrame(sub.Key())
		c.send(encodeEvent(evError, errorBody{Code: hub.CodeForbidden, Event: evAuth,
			Message: "refreshed token no longer grants " + sub.Stream().String()}))
	}
	c.reply(ackID, struct {
		OK        bool      `json:"ok"`
		User      string    `json:"user"`
		ExpiresAt time.Time `json:"expiresAt"`
	}{true, claims.Subject, claims.ExpiresAt})
}

// leftFrame queues left-project or unsubscribed, removing key from the
// recovery state the client holds.
func (c *conn) leftFrame(key subKey) {
	var frame []byte
	if kind(key.Kind) == kindProject {
		frame = encodeEventOpen(evLeftProject, roomBody{ProjectID: key.Stream.Project, Room: roomOf(key.Stream.Project)})
	} else {
		frame = encodeEventOpen(evUnsubscribed, collectionBody{Project: key.Stream.Project, Collection: key.Stream.Collection})
	}
	c.sendState(frame, &stateChange{withState: true, op: opRemove, key: key})
}

type roomBody struct {
	ProjectID string `json:"projectId"`
	Room      string `json:"room"`
}

type collectionBody struct {
	Project    string `json:"project"`
	Collection string `json:"collection"`
}
