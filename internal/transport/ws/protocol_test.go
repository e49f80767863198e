package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/wstest"
)

const hour = time.Hour

func token(t *testing.T, user string, projects ...string) string {
	return wstest.Token(t, user, hour, projects, nil, nil)
}

func TestReadyWithHeaderAndFirstMessage(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	tok := token(t, "u1", "p1")

	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	c.Send(`{"op":"ping","id":7}`)
	if f := c.Expect("pong"); string(f.ID) != "7" {
		t.Fatalf("pong id %s, want 7", f.ID)
	}

	c2 := wstest.Dial(t, n.WSURL(), wstest.DialOptions{})
	c2.Send(map[string]any{"op": "auth", "id": "a1", "token": tok})
	f := c2.Expect("ready")
	if f.User != "u1" || string(f.ID) != `"a1"` || f.Connection == "" || f.ExpiresAt.Before(time.Now()) {
		t.Fatalf("ready frame %s", f.Raw)
	}
}

func TestSubscribeDeliverUnsubscribe(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p1")})
	sub := c.Subscribe("s1", "p1", "todos", "")
	if !sub.Recovered || sub.Offset == "" || sub.Project != "p1" || sub.Collection != "todos" {
		t.Fatalf("subscribed frame %s", sub.Raw)
	}
	ev := wstest.Doc("p1", "todos", 1)
	ev.Actor = "user-42"
	offs := n.Publish(t, ev, wstest.Doc("p1", "other", 2), wstest.Doc("p1", "todos", 3))
	got := c.Events(2)
	if got[0].Offset != offs[0] || got[1].Offset != offs[2] || got[0].Actor != "user-42" || got[0].Timestamp.IsZero() {
		t.Fatalf("events %+v, want offsets %s and %s", got, offs[0], offs[2])
	}
	c.Send(`{"op":"unsubscribe","id":"u","project":"p1","collection":"todos"}`)
	if f := c.Expect("unsubscribed"); f.Project != "p1" || f.Collection != "todos" || string(f.ID) != `"u"` {
		t.Fatalf("unsubscribed frame %s", f.Raw)
	}
	n.Publish(t, wstest.Doc("p1", "todos", 4))
	c.Send(`{"op":"ping","id":"after"}`)
	// Nothing of the unsubscribed collection may come before the pong.
	if f := c.Next(); f.Op != "pong" {
		t.Fatalf("after unsubscribe got %s", f.Raw)
	}
	c.Send(`{"op":"unsubscribe","id":"u2","project":"p1","collection":"todos"}`)
	if f := c.Expect("error"); f.Code != "not_found" {
		t.Fatalf("second unsubscribe: %s", f.Raw)
	}
}

func TestWildcardSubscription(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p1")})
	c.Subscribe("all", "p1", "*", "")
	n.Publish(t, wstest.Doc("p1", "a", 1), wstest.Doc("p2", "a", 2), wstest.Doc("p1", "b", 3))
	f := c.Expect("events")
	evs := f.Events
	if len(evs) < 2 {
		evs = append(evs, c.Events(2-len(evs))...)
	}
	if f.Collection != "*" || len(evs) != 2 || evs[0].Collection != "a" || evs[1].Collection != "b" {
		t.Fatalf("wildcard got frame %s and %d events", f.Raw, len(evs))
	}
	a, _ := backplane.ParseOffset(evs[0].Offset)
	b, _ := backplane.ParseOffset(evs[1].Offset)
	if !a.Less(b) {
		t.Fatalf("project-wide offsets %s, %s not increasing", evs[0].Offset, evs[1].Offset)
	}
	// The project stream's offset resumes a wildcard subscription.
	c2 := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "p1")})
	if s := c2.Subscribe("all", "p1", "*", evs[0].Offset); !s.Recovered {
		t.Fatal("resume of * not recovered")
	}
	if got := c2.Events(1); got[0].Collection != "b" {
		t.Fatalf("resumed * got %+v", got)
	}
}

func TestAudience(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	alice := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "alice", hour, []string{"p"}, nil, nil)})
	bob := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "bob", hour, []string{"p"}, nil, []string{"admin"})})
	carol := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "carol", hour, []string{"p"}, nil, []string{"viewer"})})
	for _, c := range []*wstest.Client{alice, bob, carol} {
		c.Subscribe("s", "p", "c", "")
	}
	forAlice := wstest.Doc("p", "c", 1)
	forAlice.Audience = &syncgate.Audience{Users: []string{"alice"}}
	forAdmins := wstest.Doc("p", "c", 2)
	forAdmins.Audience = &syncgate.Audience{Roles: []string{"admin"}}
	n.Publish(t, forAlice, forAdmins, wstest.Doc("p", "c", 3))

	want := map[string][]int{"alice": {1, 3}, "bob": {2, 3}, "carol": {3}}
	for name, c := range map[string]*wstest.Client{"alice": alice, "bob": bob, "carol": carol} {
		var got []int
		for _, ev := range c.Events(len(want[name])) {
			got = append(got, wstest.Seq(t, ev))
		}
		if fmt.Sprint(got) != fmt.Sprint(want[name]) {
			t.Errorf("%s got %v, want %v", name, got, want[name])
		}
	}
	// Replay honours the audience too.
	carol2 := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "carol", hour, []string{"p"}, nil, nil)})
	s := carol2.Subscribe("s", "p", "c", backplane.Offset{Epoch: epochOf(t, n), Hi: 0}.String())
	if !s.Recovered {
		t.Fatal("replay from the start not recovered")
	}
	if got := carol2.Events(1); wstest.Seq(t, got[0]) != 3 {
		t.Fatalf("carol's replay %+v", got)
	}
}

func epochOf(t *testing.T, n *wstest.Node) string {
	t.Helper()
	h, err := n.BP.History(context.Background(), backplane.Stream{Project: "p", Collection: "c"}, "", backplane.Page{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := backplane.ParseOffset(h.Head)
	if err != nil {
		t.Fatal(err)
	}
	return o.Epoch
}

func TestAuthFailures(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{AuthTimeout: 300 * time.Millisecond}})
	otherKey, err := jwtWithSecret("another-secret-0123456789abcdef0123456789", "u1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		opts  wstest.DialOptions
		first string // a first message to send instead of auth
	}{
		{"missing token times out", wstest.DialOptions{}, ""},
		{"wrong signature", wstest.DialOptions{Token: otherKey}, ""},
		{"expired", wstest.DialOptions{Token: wstest.Token(t, "u1", -time.Minute, []string{"p1"}, nil, nil)}, ""},
		{"malformed", wstest.DialOptions{Token: "not.a.jwt"}, ""},
		{"wrong signature as first message", wstest.DialOptions{Token: otherKey, FirstMessage: true}, ""},
		{"subscribe before auth", wstest.DialOptions{}, `{"op":"subscribe","id":"1","project":"p1","collection":"c"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := wstest.TryDial(t, n.WSURL(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.first != "" {
				c.Send(tt.first)
			}
			if code := c.Closed(); code != 4001 {
				t.Fatalf("close code %d, want 4001 (%v)", code, c.Err())
			}
		})
	}
	if got := testutilCount(t, n, "syncgate_auth_failures_total"); got < float64(len(tests)) {
		t.Fatalf("auth failures counted %v, want >= %d", got, len(tests))
	}
}

func TestForbiddenSubscriptions(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "u1", hour, []string{"p1"}, []string{"todos"}, nil)})
	for _, req := range []string{
		`{"op":"subscribe","id":"1","project":"p2","collection":"todos"}`,
		`{"op":"subscribe","id":"2","project":"p1","collection":"secrets"}`,
		`{"op":"subscribe","id":"3","project":"p1","collection":"*"}`,
	} {
		c.Send(req)
		if f := c.Expect("error"); f.Code != "forbidden" || len(f.ID) == 0 {
			t.Fatalf("%s: got %s, want error forbidden with id", req, f.Raw)
		}
	}
	c.Subscribe("ok", "p1", "todos", "")
}

func TestBadInputKeepsServing(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxSubscriptions: 2}})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: token(t, "u1", "*")})
	tests := []struct {
		msg, code, contains string
	}{
		{`{not json`, "bad_request", "not a JSON object"},
		{`[1,2]`, "bad_request", "not a JSON object"},
		{`{"op":"dance"}`, "bad_request", `unknown op "dance"`},
		{`{"id":"1"}`, "bad_request", "op is missing"},
		{`{"op":"ping","id":{"x":1}}`, "bad_request", "id must be"},
		{`{"op":"subscribe","project":"p","collection":"c"}`, "bad_request", "needs an id"},
		{`{"op":"subscribe","id":"1","project":"bad project","collection":"c"}`, "bad_request", `project "bad project"`},
		{`{"op":"subscribe","id":"1","project":"p","collection":"a/b"}`, "bad_request", `collection "a/b"`},
		{`{"op":"subscribe","id":"1","project":"` + strings.Repeat("x", 65) + `","collection":"c"}`, "bad_request", "[A-Za-z0-9_-]{1,64}"},
		{`{"op":"subscribe","id":"1","project":"p","collection":"c","since":"garbage"}`, "bad_request", "since"},
		{`{"op":"unsubscribe","id":"1","project":"p","collection":"*x"}`, "bad_request", "collection"},
	}
	for _, tt := range tests {
		c.Send(tt.msg)
		f := c.Expect("error")
		if f.Code != tt.code || !strings.Contains(f.Message, tt.contains) {
			t.Errorf("%s: got %s, want %s containing %q", tt.msg, f.Raw, tt.code, tt.contains)
		}
	}
	c.Subscribe("a", "p", "a", "")
	c.Send(`{"op":"subscribe","id":"dup","project":"p","collection":"a"}`)
	if f := c.Expect("error"); f.Code != "bad_request" || !strings.Contains(f.Message, "already subscribed") {
		t.Fatalf("duplicate subscribe: %s", f.Raw)
	}
	c.Subscribe("b", "p", "b", "")
	c.Send(`{"op":"subscribe","id":"c","project":"p","collection":"c"}`)
	if f := c.Expect("error"); f.Code != "limit_exceeded" {
		t.Fatalf("third subscription: %s", f.Raw)
	}
	// Still serving: the two subscriptions deliver.
	n.Publish(t, wstest.Doc("p", "a", 1), wstest.Doc("p", "b", 2))
	if got := c.Events(2); wstest.Seq(t, got[0]) != 1 || wstest.Seq(t, got[1]) != 2 {
		t.Fatalf("after bad input got %+v", got)
	}
}

func TestProtocolErrorsClose(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxMessageBytes: 1024}})
	tok := token(t, "u1", "p")

	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	if err := c.WS.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if code := c.Closed(); code != 4400 {
		t.Fatalf("binary frame: close %d, want 4400", code)
	}

	c = wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	c.Send(`{"op":"ping","id":"` + strings.Repeat("x", 2000) + `"}`)
	if code := c.Closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: close %d, want 1009", code)
	}

	// The node still serves.
	c = wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	c.Send(`{"op":"ping"}`)
	c.Expect("pong")
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	short := wstest.Token(t, "u1", 1500*time.Millisecond, []string{"p"}, nil, nil)

	expiring := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: short})
	refreshed := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: short})
	refreshed.Subscribe("s", "p", "c", "")
	refreshed.Send(map[string]any{"op": "auth", "id": "r", "token": wstest.Token(t, "u1", hour, []string{"p"}, nil, nil)})
	if f := refreshed.Expect("ready"); f.ExpiresAt.Before(time.Now().Add(30 * time.Minute)) {
		t.Fatalf("refresh ready %s", f.Raw)
	}
	if code := expiring.Closed(); code != 4009 {
		t.Fatalf("expired connection closed with %d, want 4009", code)
	}
	// Past the first token's expiry the refreshed one still delivers.
	n.Publish(t, wstest.Doc("p", "c", 1))
	refreshed.Events(1)

	// A bad refresh is an error, the connection stays.
	refreshed.Send(`{"op":"auth","id":"bad","token":"nope"}`)
	if f := refreshed.Expect("error"); f.Code != "unauthorized" {
		t.Fatalf("bad refresh %s", f.Raw)
	}
	// A refresh that drops the project ends that subscription.
	refreshed.Send(map[string]any{"op": "auth", "token": wstest.Token(t, "u1", hour, []string{"other"}, nil, nil)})
	refreshed.Expect("ready")
	if f := refreshed.Expect("error"); f.Code != "forbidden" {
		t.Fatalf("revoked subscription: %s", f.Raw)
	}
	refreshed.Expect("unsubscribed")
	// Another user's token closes with 4003.
	refreshed.Send(map[string]any{"op": "auth", "token": wstest.Token(t, "mallory", hour, []string{"p"}, nil, nil)})
	if code := refreshed.Closed(); code != 4003 {
		t.Fatalf("subject change closed with %d, want 4003", code)
	}
}

func TestOriginCheck(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{OriginPatterns: []string{"app.example.com"}}})
	tok := token(t, "u1", "p")
	_, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: tok, Header: http.Header{"Origin": {"https://evil.example.net"}}})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("foreign origin: err %v, want HTTP 403", err)
	}
	wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok, Header: http.Header{"Origin": {"https://app.example.com"}}})
}

func TestNodeFull(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{MaxConnections: 1}})
	tok := token(t, "u1", "p")
	wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	c, err := wstest.TryDial(t, n.WSURL(), wstest.DialOptions{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if code := c.Closed(); code != 1013 {
		t.Fatalf("second connection closed with %d, want 1013", code)
	}
}

func jwtWithSecret(secret, user string) (string, error) {
	return signWith([]byte(secret), user)
}

func testutilCount(t *testing.T, n *wstest.Node, name string) float64 {
	t.Helper()
	mfs, err := n.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

var _ = json.Valid
