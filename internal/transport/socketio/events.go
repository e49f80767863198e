package socketio

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
)

// onEvent handles one client EVENT on the connected socket. It runs on the
// reader goroutine.
func (c *conn) onEvent(p packet) {
	name, args, err := eventArgs(p.Data)
	if err != nil {
		c.s.clientMessage("invalid")
		c.fail(p.ID, "", hub.CodeBadRequest, err.Error())
		return
	}
	var arg json.RawMessage
	if len(args) > 0 {
		arg = args[0]
	}
	switch name {
	case evJoinProject, evLeaveProject:
		c.s.clientMessage(name)
		project, err := projectArg(arg)
		if err != nil {
			c.fail(p.ID, name, hub.CodeBadRequest, err.Error())
			return
		}
		if name == evJoinProject {
			c.join(p.ID, keyOf(kindProject, backplane.Stream{Project: project, Collection: syncgate.AllCollections}))
		} else {
			c.leave(p.ID, keyOf(kindProject, backplane.Stream{Project: project, Collection: syncgate.AllCollections}))
		}
	case evSubscribe, evUnsubscribe:
		c.s.clientMessage(name)
		var req collectionBody
		if err := json.Unmarshal(arg, &req); err != nil || len(arg) == 0 || arg[0] != '{' {
			c.fail(p.ID, name, hub.CodeBadRequest, name+" takes {project, collection}")
			return
		}
		if err := syncgate.ValidateSubscription(req.Project, req.Collection); err != nil {
			c.fail(p.ID, name, hub.CodeBadRequest, err.Error())
			return
		}
		key := keyOf(kindCollection, backplane.Stream{Project: req.Project, Collection: req.Collection})
		if name == evSubscribe {
			c.join(p.ID, key)
		} else {
			c.leave(p.ID, key)
		}
	case evAuth:
		c.s.clientMessage(name)
		var req struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(arg, &req); err != nil || req.Token == "" {
			c.fail(p.ID, name, hub.CodeBadRequest, "auth takes {token}")
			return
		}
		c.refresh(p.ID, req.Token)
	default:
		c.s.clientMessage("invalid")
		c.fail(p.ID, clip(name), hub.CodeBadRequest, fmt.Sprintf("unknown event %q: syncgate handles join-project, leave-project, subscribe, unsubscribe and auth", clip(name)))
	}
}

// projectArg accepts "p1", {"projectId":"p1"} or {"project":"p1"}.
func projectArg(arg json.RawMessage) (string, error) {
	var project string
	if len(arg) > 0 && arg[0] == '{' {
		var o struct {
			ProjectID string `json:"projectId"`
			Project   string `json:"project"`
		}
		if err := json.Unmarshal(arg, &o); err != nil {
			return "", fmt.Errorf("the argument is a project id or {projectId}")
		}
		project = o.ProjectID
		if project == "" {
			project = o.Project
		}
	} else if err := json.Unmarshal(arg, &project); err != nil {
		return "", fmt.Errorf("the argument is a project id or {projectId}")
	}
	if err := syncgate.ValidateSubscription(project, syncgate.AllCollections); err != nil {
		return "", err
	}
	return project, nil
}

// join handles join-project and subscribe. Joining again what the socket
// already holds succeeds without a second subscription (apps rejoin on every
// connect, also after a recovered reconnect).
func (c *conn) join(ackID int64, key subKey) {
	name := evJoinProject
	if kind(key.Kind) == kindCollection {
		name = evSubscribe
	}
	ok, frame := c.joinAnswers(key)
	sub, opened, err := c.sess.Open(hub.OpenRequest{Key: key, Encoding: encodingOf(kind(key.Kind))})
	var e *hub.Error
	switch {
	case errors.As(err, &e) && e.Code == hub.CodeDuplicate:
		c.reply(ackID, ok)
		c.sendState(frame, &stateChange{withState: true})
		return
	case err != nil:
		c.failWith(ackID, name, err)
		return
	}
	frames := make([]hub.Frame, 0, 2)
	if ackID >= 0 {
		frames = append(frames, hub.Frame{Data: encodeAck(ackID, ok)})
	}
	frames = append(frames, hub.Frame{Data: frame, Meta: &stateChange{withState: true, op: opSet, key: key, off: opened.Head}})
	c.sess.Begin(frames, sub)
}

// joinAnswers returns the ack body and the unclosed event announcing a join.
func (c *conn) joinAnswers(key subKey) (any, []byte) {
	if kind(key.Kind) == kindProject {
		body := roomBody{ProjectID: key.Stream.Project, Room: roomOf(key.Stream.Project)}
		return struct {
			OK bool `json:"ok"`
			roomBody
		}{true, body}, encodeEventOpen(evJoinedProject, body)
	}
	body := collectionBody{Project: key.Stream.Project, Collection: key.Stream.Collection}
	return struct {
		OK bool `json:"ok"`
		collectionBody
	}{true, body}, encodeEventOpen(evSubscribed, body)
}

// leave handles leave-project (always answered with left-project) and
// unsubscribe (not_found when not subscribed, as on /v1/ws).
func (c *conn) leave(ackID int64, key subKey) {
	sub := c.sess.Lookup(key)
	if sub == nil && kind(key.Kind) == kindCollection {
		c.fail(ackID, evUnsubscribe, hub.CodeNotFound, "not subscribed to "+key.Stream.String())
		return
	}
	if sub != nil {
		c.sess.End(sub)
	}
	if kind(key.Kind) == kindProject {
		c.reply(ackID, struct {
			OK bool `json:"ok"`
			roomBody
		}{true, roomBody{ProjectID: key.Stream.Project, Room: roomOf(key.Stream.Project)}})
	} else {
		c.reply(ackID, struct {
			OK bool `json:"ok"`
			collectionBody
		}{true, collectionBody{Project: key.Stream.Project, Collection: key.Stream.Collection}})
	}
	c.leftFrame(key)
}

func (s *Server) clientMessage(op string) {
	s.h.ClientMessage("socketio_" + op)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
