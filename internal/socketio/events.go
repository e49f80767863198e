package socketio

import (
	"encoding/json"
	"fmt"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

// onEvent handles one client EVENT on the connected socket. It runs on the
// reader goroutine.
func (c *conn) onEvent(p packet) {
	name, args, err := eventArgs(p.Data)
	if err != nil {
		c.s.clientMessage("invalid")
		c.fail(p.ID, "", codeBadRequest, err.Error())
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
			c.fail(p.ID, name, codeBadRequest, err.Error())
			return
		}
		if name == evJoinProject {
			c.join(p.ID, subKey{kindProject, backplane.Stream{Project: project, Collection: syncgate.AllCollections}})
		} else {
			c.leave(p.ID, subKey{kindProject, backplane.Stream{Project: project, Collection: syncgate.AllCollections}})
		}
	case evSubscribe, evUnsubscribe:
		c.s.clientMessage(name)
		var req collectionBody
		if err := json.Unmarshal(arg, &req); err != nil || len(arg) == 0 || arg[0] != '{' {
			c.fail(p.ID, name, codeBadRequest, name+" takes {project, collection}")
			return
		}
		if err := validate(req.Project, req.Collection); err != nil {
			c.fail(p.ID, name, codeBadRequest, err.Error())
			return
		}
		key := subKey{kindCollection, backplane.Stream{Project: req.Project, Collection: req.Collection}}
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
			c.fail(p.ID, name, codeBadRequest, "auth takes {token}")
			return
		}
		c.refresh(p.ID, req.Token)
	default:
		c.s.clientMessage("invalid")
		c.fail(p.ID, clip(name), codeBadRequest, fmt.Sprintf("unknown event %q: syncgate handles join-project, leave-project, subscribe, unsubscribe and auth", clip(name)))
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
	if key.kind == kindCollection {
		name = evSubscribe
	}
	ok, frame := c.joinAnswers(key)
	sub, dup, code, msg := c.reserve(key)
	switch {
	case code != "":
		c.fail(ackID, name, code, msg)
		return
	case dup:
		c.reply(ackID, ok)
		c.enqueue(item{frame: frame, withState: true})
		return
	}
	_, head, err := c.open(sub, "")
	if err != nil {
		c.log.Warn("subscribe failed", "stream", key.stream.String(), "err", err)
		c.fail(ackID, name, codeInternal, "subscribe "+key.stream.String()+": "+err.Error())
		return
	}
	c.mu.Lock()
	if ackID >= 0 {
		a := encodeAck(ackID, ok)
		c.queueLocked(item{frame: a}, len(a))
	}
	c.startLocked(sub, head, frame)
	c.mu.Unlock()
	c.signal()
}

// joinAnswers returns the ack body and the unclosed event announcing a join.
func (c *conn) joinAnswers(key subKey) (any, []byte) {
	if key.kind == kindProject {
		body := roomBody{ProjectID: key.stream.Project, Room: roomOf(key.stream.Project)}
		return struct {
			OK bool `json:"ok"`
			roomBody
		}{true, body}, encodeEventOpen(evJoinedProject, body)
	}
	body := collectionBody{Project: key.stream.Project, Collection: key.stream.Collection}
	return struct {
		OK bool `json:"ok"`
		collectionBody
	}{true, body}, encodeEventOpen(evSubscribed, body)
}

// leave handles leave-project (always answered with left-project) and
// unsubscribe (not_found when not subscribed, as on /v1/ws).
func (c *conn) leave(ackID int64, key subKey) {
	c.mu.Lock()
	sub := c.subs[key]
	c.mu.Unlock()
	if sub == nil && key.kind == kindCollection {
		c.fail(ackID, evUnsubscribe, codeNotFound, "not subscribed to "+key.stream.String())
		return
	}
	if sub != nil {
		c.endSubscription(sub, true)
	}
	if key.kind == kindProject {
		c.reply(ackID, struct {
			OK bool `json:"ok"`
			roomBody
		}{true, roomBody{ProjectID: key.stream.Project, Room: roomOf(key.stream.Project)}})
	} else {
		c.reply(ackID, struct {
			OK bool `json:"ok"`
			collectionBody
		}{true, collectionBody{Project: key.stream.Project, Collection: key.stream.Collection}})
	}
	c.leftFrame(key)
}

func (s *Server) clientMessage(op string) {
	if s.m != nil {
		s.m.ClientMessages.WithLabelValues("socketio_" + op).Inc()
	}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
