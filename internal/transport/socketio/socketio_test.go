package socketio_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ev(typ, project, collection, id string, doc, old string) syncgate.Event {
	e := syncgate.Event{Type: typ, Project: project, Collection: collection, DocumentID: id}
	if doc != "" {
		e.Document = json.RawMessage(doc)
	}
	if old != "" {
		e.OldDocument = json.RawMessage(old)
	}
	return e
}

func TestHandshake(t *testing.T) {
	n := startNode(t, nil, func(c *nodeConfig) { c.PingInterval = 7 * time.Second; c.SIO.PingTimeout = 3 * time.Second })
	c := dial(t, n, dialOpts{})
	if c.Open.SID == "" || c.Open.PingInterval != 7000 || c.Open.PingTimeout != 3000 || c.Open.MaxPayload != 64<<10 {
		t.Fatalf("handshake %+v", c.Open)
	}
	a := c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
	if a.SID == c.Open.SID {
		t.Fatal("socket id should differ from the Engine.IO session id")
	}
	c.send("2probe") // a client ping is answered
	if f := c.next(); f.Raw != "3probe" {
		t.Fatalf("ping answer %q", f.Raw)
	}
}

func TestJoinProject(t *testing.T) {
	n := startNode(t, nil, nil)
	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
	c.emit(false, "join-project", "p1")
	j := c.expectEvent("joined-project")
	var room struct{ ProjectID, Room string }
	j.Decode(t, 0, &room)
	if room.ProjectID != "p1" || room.Room != "project:p1" || !strings.HasPrefix(j.State(), "sg1|jp1/*@") {
		t.Fatalf("joined-project %s", j.Args)
	}
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)
	events := []syncgate.Event{
		ev("insert", "p1", "todos", "t1", `{"title":"a"}`, ""),
		ev("update", "p1", "todos", "t1", `{"title":"b"}`, `{"title":"a"}`),
		ev("delete", "p1", "todos", "t1", "", `{"id":"t1","title":"b"}`),
		ev("delete", "p1", "todos", "t9", "", ""), // only the key: data is {id}
		ev("create_table", "p1", "notes", "", `{"columns":["id"]}`, ""),
		ev("toggle_cron_job", "p1", "jobs", "j1", `{"enabled":true}`, ""),
		ev("document:created", "p1", "todos", "t2", `{"title":"c"}`, ""),
		ev("document:deleted", "p1", "todos", "t2", "", ""),
		ev("deploy.finished", "p1", "deploys", "", `{"ok":true}`, ""),
		ev("insert", "p2", "todos", "x", `{}`, ""), // another project
	}
	for i := range events {
		events[i].Timestamp = ts
	}
	n.Publish(t, events...)
	type change struct {
		Type      string          `json:"type"`
		ProjectID string          `json:"projectId"`
		TableName string          `json:"tableName"`
		Data      json.RawMessage `json:"data"`
		OldData   json.RawMessage `json:"oldData"`
		Timestamp string          `json:"timestamp"`
	}
	want := []struct {
		event, typ, table, data, old string
	}{
		{"database-change", "insert", "todos", `{"title":"a"}`, "null"},
		{"database-change", "update", "todos", `{"title":"b"}`, `{"title":"a"}`},
		// A delete's data is the deleted row, so that the seed's
		// `case 'delete': if (event.data?.id)` finds it.
		{"database-change", "delete", "todos", `{"id":"t1","title":"b"}`, `{"id":"t1","title":"b"}`},
		{"database-change", "delete", "todos", `{"id":"t9"}`, "null"},
		{"database-change", "create_table", "notes", `{"columns":["id"]}`, "null"},
		{"database-change", "toggle_cron_job", "jobs", `{"enabled":true}`, "null"},
		{"project-event", "document:created", "", `{"title":"c"}`, ""},
		{"project-event", "document:deleted", "", `{"id":"t2"}`, ""},
		{"project-event", "deploy.finished", "", `{"ok":true}`, ""},
	}
	prev := j.State()
	for _, w := range want {
		e := c.expectEvent(w.event)
		var ch change
		e.Decode(t, 0, &ch)
		if ch.Type != w.typ || ch.ProjectID != "p1" || ch.TableName != w.table || string(ch.Data) != w.data ||
			string(ch.OldData) != w.old || ch.Timestamp != "2026-11-22T10:00:00.123Z" {
			t.Errorf("%s: got %s", w.typ, e.Args[0])
		}
		if s := e.State(); s == "" || s == prev {
			t.Errorf("%s: state %q did not advance from %q", w.typ, s, prev)
		} else {
			prev = s
		}
	}
	c.noFrame(100 * time.Millisecond)

	// Joining again is idempotent (apps rejoin on every connect).
	id := c.emit(true, "join-project", map[string]string{"projectId": "p1"})
	if a := c.expectAck(id); !a.OK || a.Room != "project:p1" {
		t.Fatalf("rejoin ack %+v", a)
	}
	c.expectEvent("joined-project")
	n.Publish(t, ev("insert", "p1", "todos", "t3", `{}`, ""))
	c.expectEvent("database-change")
	c.noFrame(50 * time.Millisecond)

	c.emit(false, "leave-project", "p1")
	l := c.expectEvent("left-project")
	if l.State() != "sg1" {
		t.Fatalf("left-project state %q, want empty sg1", l.State())
	}
	n.Publish(t, ev("insert", "p1", "todos", "t4", `{}`, ""))
	c.noFrame(100 * time.Millisecond)
}

func TestSubscribeCollection(t *testing.T) {
	n := startNode(t, nil, nil)
	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
	id := c.emit(true, "subscribe", map[string]string{"project": "p1", "collection": "events"})
	if a := c.expectAck(id); !a.OK || a.Project != "p1" || a.Collection != "events" {
		t.Fatalf("subscribe ack %+v", a)
	}
	c.expectEvent("subscribed")
	n.Publish(t,
		ev("document:created", "p1", "events", "e1", `{"title":"Launch"}`, ""),
		ev("document:updated", "p1", "events", "e1", `{"title":"Launch!"}`, `{"title":"Launch"}`),
		ev("document:created", "p1", "other", "o1", `{}`, ""),
		ev("document:deleted", "p1", "events", "e1", "", ""),
		ev("collection:cleared", "p1", "events", "", "", ""),
	)
	type doc struct {
		Type        string          `json:"type"`
		Collection  string          `json:"collection"`
		DocumentID  string          `json:"documentId"`
		Document    json.RawMessage `json:"document"`
		OldDocument json.RawMessage `json:"oldDocument"`
		Timestamp   time.Time       `json:"timestamp"`
		Offset      string          `json:"offset"`
	}
	for _, w := range []struct{ typ, id, doc string }{
		{"document:created", "e1", `{"title":"Launch"}`},
		{"document:updated", "e1", `{"title":"Launch!"}`},
		{"document:deleted", "e1", ""},
		{"collection:cleared", "", ""},
	} {
		e := c.expectEvent(w.typ)
		var d doc
		e.Decode(t, 0, &d)
		if d.Type != w.typ || d.Collection != "events" || d.DocumentID != w.id || string(d.Document) != w.doc ||
			d.Timestamp.IsZero() || d.Offset == "" {
			t.Errorf("%s: %s", w.typ, e.Args[0])
		}
		if !strings.Contains(e.State(), "|sp1/events@"+d.Offset) {
			t.Errorf("%s: state %q does not carry offset %s", w.typ, e.State(), d.Offset)
		}
	}
	id = c.emit(true, "unsubscribe", map[string]string{"project": "p1", "collection": "events"})
	if a := c.expectAck(id); !a.OK {
		t.Fatalf("unsubscribe ack %+v", a)
	}
	c.expectEvent("unsubscribed")
	id = c.emit(true, "unsubscribe", map[string]string{"project": "p1", "collection": "events"})
	if a := c.expectAck(id); a.OK || a.Error.Code != "not_found" {
		t.Fatalf("second unsubscribe ack %+v", a)
	}
	n.Publish(t, ev("document:created", "p1", "events", "e2", `{}`, ""))
	c.noFrame(100 * time.Millisecond)
}

func TestAuthentication(t *testing.T) {
	n := startNode(t, nil, func(c *nodeConfig) { c.AuthTimeout = 300 * time.Millisecond })
	good := tokenFor(t, "u1", []string{"p1"}, nil, nil)
	t.Run("auth payload", func(t *testing.T) {
		dial(t, n, dialOpts{}).mustConnect(map[string]string{"token": good})
	})
	t.Run("authorization header", func(t *testing.T) {
		dial(t, n, dialOpts{Header: http.Header{"Authorization": {"Bearer " + good}}}).mustConnect(nil)
	})
	t.Run("query", func(t *testing.T) {
		dial(t, n, dialOpts{Query: "token=" + good}).mustConnect(nil)
	})
	for name, auth := range map[string]any{
		"missing":   nil,
		"bad":       map[string]string{"token": "nope"},
		"expired":   map[string]string{"token": wstest.Token(t, "u1", -time.Minute, []string{"p1"}, nil, nil)},
		"wrong key": map[string]string{"token": good[:len(good)-4] + "AAAA"},
		"not text":  map[string]any{"token": 42},
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, n, dialOpts{})
			f := c.connect(auth)
			var a connectAnswer
			if f.SIO != '4' || json.Unmarshal(f.Data, &a) != nil || a.Message == "" || a.Data.Code == "" {
				t.Fatalf("got %q, want CONNECT_ERROR with a message", f.Raw)
			}
			if strings.Contains(f.Raw, good) {
				t.Fatal("the answer echoes the token")
			}
			// Events before a successful CONNECT are ignored, and the
			// connection is closed when no CONNECT succeeds in time.
			c.emit(false, "join-project", "p1")
			if code := c.closed(); code != 4001 {
				t.Fatalf("close %d, want 4001", code)
			}
		})
	}
	t.Run("other namespace", func(t *testing.T) {
		c := dial(t, n, dialOpts{})
		c.send(`40/admin,{"token":"` + good + `"}`)
		if f := c.next(); f.SIO != '4' || f.NSP != "/admin" || !strings.Contains(f.Raw, "Invalid namespace") {
			t.Fatalf("got %q", f.Raw)
		}
		c.mustConnect(map[string]string{"token": good}) // "/" still works
	})
	t.Run("expiry", func(t *testing.T) {
		c := dial(t, n, dialOpts{})
		c.mustConnect(map[string]string{"token": wstest.Token(t, "u1", 1200*time.Millisecond, []string{"p1"}, nil, nil)})
		if code := c.closed(); code != 4009 {
			t.Fatalf("close %d, want 4009", code)
		}
	})
	t.Run("refresh", func(t *testing.T) {
		c := dial(t, n, dialOpts{})
		c.mustConnect(map[string]string{"token": wstest.Token(t, "u1", 1200*time.Millisecond, []string{"p1", "p2"}, nil, nil)})
		c.emit(false, "join-project", "p2")
		c.expectEvent("joined-project")
		id := c.emit(true, "auth", map[string]string{"token": good}) // u1, p1 only, 1h
		c.expectEvent("left-project")
		if e := c.expectEvent("error"); !strings.Contains(string(e.Args[0]), "forbidden") {
			t.Fatalf("revocation error %s", e.Args)
		}
		if a := c.expectAck(id); !a.OK {
			t.Fatalf("auth ack %+v", a)
		}
		c.noFrame(1500 * time.Millisecond) // outlives the first token
		id = c.emit(true, "auth", map[string]string{"token": tokenFor(t, "u2", []string{"p1"}, nil, nil)})
		if a := c.expectAck(id); a.OK || a.Error.Code != "forbidden" {
			t.Fatalf("other user's token: ack %+v", a)
		}
		if code := c.closed(); code != 4003 {
			t.Fatalf("close %d, want 4003", code)
		}
	})
}

func TestPermissions(t *testing.T) {
	n := startNode(t, nil, func(c *nodeConfig) { c.MaxSubscriptions = 2 })
	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1", "p2", "p3"}, []string{"events", "a", "b"}, nil)})
	id := c.emit(true, "join-project", "p1") // a collection-restricted token may not read "*"
	if a := c.expectAck(id); a.OK || a.Error.Code != "forbidden" {
		t.Fatalf("join-project ack %+v", a)
	}
	id = c.emit(true, "subscribe", map[string]string{"project": "p9", "collection": "events"})
	if a := c.expectAck(id); a.OK || a.Error.Code != "forbidden" {
		t.Fatalf("other project ack %+v", a)
	}
	id = c.emit(true, "subscribe", map[string]string{"project": "p1", "collection": "secret"})
	if a := c.expectAck(id); a.OK || a.Error.Code != "forbidden" {
		t.Fatalf("other collection ack %+v", a)
	}
	c.emit(false, "subscribe", map[string]string{"project": "p1", "collection": "secret"})
	if e := c.expectEvent("error"); !strings.Contains(string(e.Args[0]), `"event":"subscribe"`) {
		t.Fatalf("error event %s", e.Args)
	}
	for _, coll := range []string{"a", "b"} {
		id = c.emit(true, "subscribe", map[string]string{"project": "p1", "collection": coll})
		if a := c.expectAck(id); !a.OK {
			t.Fatalf("subscribe %s: %+v", coll, a)
		}
		c.expectEvent("subscribed")
	}
	id = c.emit(true, "subscribe", map[string]string{"project": "p1", "collection": "events"})
	if a := c.expectAck(id); a.OK || a.Error.Code != "limit_exceeded" {
		t.Fatalf("third subscription ack %+v", a)
	}
	n.Publish(t, ev("document:created", "p1", "secret", "s", `{}`, ""), ev("document:created", "p1", "a", "a1", `{}`, ""))
	c.expectEvent("document:created")
	c.noFrame(100 * time.Millisecond)
}

func TestAudience(t *testing.T) {
	n := startNode(t, nil, nil)
	clients := map[string]*client{}
	for _, u := range []struct {
		user  string
		roles []string
	}{{"u1", nil}, {"u2", []string{"admin"}}, {"u3", nil}} {
		c := dial(t, n, dialOpts{})
		c.mustConnect(map[string]string{"token": tokenFor(t, u.user, []string{"p1"}, nil, u.roles)})
		c.emit(false, "join-project", "p1")
		c.expectEvent("joined-project")
		clients[u.user] = c
	}
	e := ev("insert", "p1", "t", "1", `{"n":1}`, "")
	e.Audience = &syncgate.Audience{Users: []string{"u1"}, Roles: []string{"admin"}}
	n.Publish(t, e, ev("insert", "p1", "t", "2", `{"n":2}`, ""))
	for user, c := range clients {
		got := c.expectEvent("database-change")
		var ch struct{ Data json.RawMessage }
		got.Decode(t, 0, &ch)
		want := `{"n":1}`
		if user == "u3" {
			want = `{"n":2}`
		}
		if string(ch.Data) != want {
			t.Errorf("%s got %s first, want %s", user, ch.Data, want)
		}
	}
}

// reconnect dials again and sends CONNECT with the recovery fields
// socket.io-client adds.
func reconnect(t *testing.T, n *node, token, pid, offset string) (*client, connectAnswer) {
	t.Helper()
	c := dial(t, n, dialOpts{})
	auth := map[string]string{"token": token, "pid": pid}
	if offset != "" {
		auth["offset"] = offset
	}
	return c, c.mustConnect(auth)
}

func TestRecovery(t *testing.T) {
	bp := backplane.NewMemory(backplane.MemoryConfig{HistorySize: 5})
	n := startNode(t, bp, nil)
	tok := tokenFor(t, "u1", []string{"p1", "p2"}, nil, nil)
	c := dial(t, n, dialOpts{})
	first := c.mustConnect(map[string]string{"token": tok})
	c.emit(false, "join-project", "p1")
	c.expectEvent("joined-project")
	id := c.emit(true, "subscribe", map[string]string{"project": "p2", "collection": "docs"})
	c.expectAck(id)
	joined := c.expectEvent("subscribed").State() // nothing received yet on p2/docs
	n.Publish(t, ev("insert", "p1", "t", "1", `1`, ""))
	last := c.expectEvent("database-change").State()
	if !strings.Contains(last, "|jp1/*@") || !strings.Contains(last, "|sp2/docs@") {
		t.Fatalf("state %q should name both subscriptions", last)
	}
	c.ws.CloseNow()

	n.Publish(t, ev("insert", "p1", "t", "2", `2`, ""), ev("document:created", "p2", "docs", "d", `3`, ""),
		ev("update", "p1", "t", "2", `4`, ""))

	t.Run("recovered", func(t *testing.T) {
		c, a := reconnect(t, n, tok, first.PID, last)
		if a.PID != first.PID {
			t.Fatalf("pid %s, want %s (recovered)", a.PID, first.PID)
		}
		got := map[string]bool{}
		for range 3 {
			e := c.nextEvent()
			got[e.Name+" "+string(e.Args[0])[:20]] = true
		}
		if len(got) != 3 {
			t.Fatalf("replayed %v", got)
		}
		// Live delivery continues on both restored subscriptions, without
		// a duplicate.
		n.Publish(t, ev("delete", "p1", "t", "2", "", ""))
		c.expectEvent("database-change")
		c.noFrame(100 * time.Millisecond)
		// The app rejoins on connect: idempotent.
		c.emit(false, "join-project", "p1")
		c.expectEvent("joined-project")
		c.noFrame(50 * time.Millisecond)
	})
	t.Run("state from before any event", func(t *testing.T) {
		c, a := reconnect(t, n, tok, first.PID, joined)
		if a.PID != first.PID {
			t.Fatalf("pid %s, want recovered", a.PID)
		}
		// Everything after the subscribed event: p1's four changes (one
		// published in the subtest above) and p2/docs's document.
		names := map[string]int{}
		for range 5 {
			e := c.nextEvent()
			names[e.Name]++
			if !strings.Contains(e.State(), "|jp1/*@") || !strings.Contains(e.State(), "|sp2/docs@") {
				t.Fatalf("state %q lost a subscription", e.State())
			}
		}
		if names["database-change"] != 4 || names["document:created"] != 1 {
			t.Fatalf("replayed %v", names)
		}
		c.noFrame(50 * time.Millisecond)
	})
	for name, off := range map[string]string{
		"no offset":        "",
		"garbage":          "not-an-offset",
		"other epoch":      "sg1|jp1/*@mdead:1-0",
		"forbidden stream": "sg1|jp9/*@" + strings.Split(last, "@")[1][:strings.Index(strings.Split(last, "@")[1], "|")],
	} {
		t.Run(name, func(t *testing.T) {
			c, a := reconnect(t, n, tok, first.PID, off)
			if a.PID == first.PID {
				t.Fatal("recovered, want a fresh session")
			}
			n.Publish(t, ev("insert", "p1", "t", "x", `{}`, ""))
			c.noFrame(100 * time.Millisecond) // a fresh session holds no subscription
		})
	}
	t.Run("trimmed", func(t *testing.T) {
		for i := range 6 {
			n.Publish(t, ev("insert", "p1", "t", "y", itoa(i), ""))
		}
		_, a := reconnect(t, n, tok, first.PID, last)
		if a.PID == first.PID {
			t.Fatal("recovered past trimmed history")
		}
	})
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestBadInput(t *testing.T) {
	n := startNode(t, nil, func(c *nodeConfig) { c.MaxMessageBytes = 4096; c.AuthTimeout = time.Second })
	get := func(query string) (int, string) {
		t.Helper()
		resp, err := http.Get(n.URL + "/socket.io/?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for query, want := range map[string]string{
		"EIO=4&transport=polling&t=x":     `"code":0`,
		"EIO=3&transport=polling":         `"code":5`,
		"EIO=4&transport=websocket&sid=x": `"code":1`,
		"EIO=4&transport=websocket":       `"code":3`, // not an upgrade
	} {
		if status, body := get(query); status != 400 || !strings.Contains(body, want) {
			t.Errorf("GET ?%s: %d %s, want 400 with %s", query, status, body, want)
		}
	}

	tok := tokenFor(t, "u1", []string{"p1"}, nil, nil)
	connected := func(t *testing.T) *client {
		c := dial(t, n, dialOpts{})
		c.mustConnect(map[string]string{"token": tok})
		return c
	}
	t.Run("malformed packets", func(t *testing.T) {
		c := connected(t)
		for _, p := range []string{`42{"not":"an array"}`, `42[1,2]`, `42["x"`, `49`, `42[]`, `421["` + strings.Repeat("x", 200) + `"]`} {
			c.send(p)
			if f := c.next(); !strings.Contains(f.Raw, "bad_request") {
				t.Fatalf("%s: got %q", p, f.Raw)
			}
		}
		id := c.emit(true, "no-such-event", 1)
		if a := c.expectAck(id); a.OK || a.Error.Code != "bad_request" {
			t.Fatalf("unknown event ack %+v", a)
		}
		for _, arg := range []any{nil, 42, "bad name!", map[string]int{"projectId": 1}} {
			id := c.emit(true, "join-project", arg)
			if a := c.expectAck(id); a.OK || a.Error.Code != "bad_request" {
				t.Fatalf("join-project %v: %+v", arg, a)
			}
		}
		id = c.emit(true, "subscribe", map[string]string{"project": "p1", "collection": "a/b"})
		if a := c.expectAck(id); a.OK || a.Error.Code != "bad_request" {
			t.Fatalf("bad collection: %+v", a)
		}
		// Binary packets are refused clearly; their attachments are skipped.
		c.send(`451-["upload",{"_placeholder":true,"num":0}]`)
		if err := c.ws.Write(t.Context(), websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if f := c.next(); !strings.Contains(f.Raw, "binary packets are not supported") {
			t.Fatalf("binary event answer %q", f.Raw)
		}
		c.emit(false, "join-project", "p1")
		c.expectEvent("joined-project")
	})
	t.Run("binary frame", func(t *testing.T) {
		c := connected(t)
		if err := c.ws.Write(t.Context(), websocket.MessageBinary, []byte{4, 1}); err != nil {
			t.Fatal(err)
		}
		if code := c.closed(); code != 4400 {
			t.Fatalf("close %d, want 4400", code)
		}
	})
	t.Run("garbage before connect", func(t *testing.T) {
		c := dial(t, n, dialOpts{})
		c.send("4zzz")
		if code := c.closed(); code != 4400 {
			t.Fatalf("close %d, want 4400", code)
		}
	})
	t.Run("unknown engine.io packet", func(t *testing.T) {
		c := connected(t)
		c.send("9")
		if code := c.closed(); code != 4400 {
			t.Fatalf("close %d, want 4400", code)
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		c := connected(t)
		c.send(`42["join-project","` + strings.Repeat("p", 5000) + `"]`)
		if code := c.closed(); code != websocket.StatusMessageTooBig {
			t.Fatalf("close %d, want 1009", code)
		}
	})
	t.Run("client disconnect", func(t *testing.T) {
		c := connected(t)
		c.send("41")
		if code := c.closed(); code != websocket.StatusNormalClosure {
			t.Fatalf("close %d, want 1000", code)
		}
	})
	// The node still serves.
	c := connected(t)
	c.emit(false, "join-project", "p1")
	c.expectEvent("joined-project")
	eventually(t, "connections to end", func() bool { return n.Hub.Connections() == 1 })
}

func TestHeartbeat(t *testing.T) {
	n := startNode(t, nil, func(c *nodeConfig) {
		c.PingInterval = 50 * time.Millisecond
		c.SIO.PingTimeout = 100 * time.Millisecond
	})
	alive := dial(t, n, dialOpts{})
	silent := dial(t, n, dialOpts{NoPong: true})
	silent.closed()
	eventually(t, "the silent connection to end", func() bool { return n.Hub.Connections() == 1 })
	alive.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
	if n.Hub.Connections() != 1 {
		t.Fatalf("%d connections, want the answering one", n.Hub.Connections())
	}
}

func TestSlowConsumer(t *testing.T) {
	n := startNode(t, nil, func(c *nodeConfig) { c.MaxQueueBytes = 512 << 10; c.WriteTimeout = time.Second })
	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
	c.emit(false, "join-project", "p1")
	c.expectEvent("joined-project")
	// Stop reading: take the socket away from the reader by filling the
	// kernel buffers with big events.
	big := `{"pad":"` + strings.Repeat("x", 100<<10) + `"}`
	stalled := dial(t, n, dialOpts{NoRead: true})
	stalled.send(`40{"token":"` + tokenFor(t, "u2", []string{"p1"}, nil, nil) + `"}`)
	stalled.send(`42["join-project","p1"]`)
	eventually(t, "both clients joined", func() bool {
		return n.Metric(t, "syncgate_subscriptions") == 2
	})
	// Batches of 3 (300 KB, under the 512 KiB bound) in lockstep with the
	// healthy client, which reads each batch before the next is published:
	// only the stalled client's queue grows, however slowly the machine
	// runs the healthy one's writer.
	batch := make([]syncgate.Event, 3)
	for i := range batch {
		batch[i] = ev("insert", "p1", "t", "1", big, "")
	}
	// Publish until the stalled client overflows (bounded: 200 batches,
	// 60 MB), whatever the kernel's socket buffers absorb first.
	for b := 0; b < 200 && n.Hub.Connections() == 2; b++ {
		n.Publish(t, batch...)
		for range batch {
			c.expectEvent("database-change")
		}
	}
	eventually(t, "the stalled client to be cut", func() bool { return n.Hub.Connections() == 1 })
}

func TestDrain(t *testing.T) {
	n := startNode(t, nil, nil)
	c := dial(t, n, dialOpts{})
	c.mustConnect(map[string]string{"token": tokenFor(t, "u1", []string{"p1"}, nil, nil)})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := n.Hub.Drain(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(n.sioURL("")); err == nil {
		// a new connection is refused while draining
	}
	if code := c.closed(); code != 1012 {
		t.Fatalf("close %d, want 1012", code)
	}
}
