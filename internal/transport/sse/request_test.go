package sse_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/transport/sse"
)

func off(s backplane.Stream, hi uint64) string {
	return backplane.Offset{Epoch: "m3fa1", Hi: hi}.In(s).String()
}

var (
	todos = backplane.Stream{Project: "demo", Collection: "todos"}
	all   = backplane.Stream{Project: "demo", Collection: "*"}
	users = backplane.Stream{Project: "p2", Collection: "users"}
)

// cursorOf is the id an encoder writes once each subscription has an
// events message at the offset given.
func cursorOf(t *testing.T, subs []sse.Subscription, offs ...string) string {
	t.Helper()
	e := sse.NewEncoder(subs)
	for i, o := range offs {
		if o != "" {
			e.Events(i, o, []byte(`{}`))
		}
	}
	r := newSSEReader(strings.NewReader(string(e.Take())))
	var id string
	for range offs {
		if m, err := r.next(); err == nil {
			id = m.ID
		}
	}
	if id == "" {
		t.Fatal("no id written")
	}
	return id
}

func TestParseRequest(t *testing.T) {
	two := []sse.Subscription{{Stream: todos}, {Stream: users}}
	cursor := cursorOf(t, two, off(todos, 7), off(users, 9))
	tests := []struct {
		name    string
		query   string
		header  http.Header
		want    []sse.Subscription
		token   string
		status  int
		code    string
		message string // the error names this
	}{
		{name: "one", query: "sub=demo/todos", want: []sse.Subscription{{Stream: todos}}},
		{name: "wildcard and offset", query: "sub=demo/*@" + off(all, 3) + "&sub=p2/users",
			want: []sse.Subscription{{Stream: all, Since: off(all, 3)}, {Stream: users}}},
		{name: "escaped", query: "sub=demo%2Ftodos%40" + url.QueryEscape(off(todos, 1)),
			want: []sse.Subscription{{Stream: todos, Since: off(todos, 1)}}},
		{name: "token in query", query: "sub=demo/todos&token=abc", token: "abc", want: []sse.Subscription{{Stream: todos}}},
		{name: "header token wins", query: "sub=demo/todos&token=abc", header: http.Header{"Authorization": {"bearer xyz"}},
			token: "xyz", want: []sse.Subscription{{Stream: todos}}},
		{name: "Last-Event-ID wins over @offset", query: "sub=demo/todos@" + off(todos, 1) + "&sub=p2/users",
			header: http.Header{"Last-Event-ID": {cursor}},
			want:   []sse.Subscription{{Stream: todos, Since: off(todos, 7)}, {Stream: users, Since: off(users, 9)}}},
		{name: "Last-Event-ID wins over lastEventId", query: "sub=demo/todos&lastEventId=" + url.QueryEscape(cursorOf(t, two, off(todos, 2))),
			header: http.Header{"Last-Event-ID": {cursor}},
			want:   []sse.Subscription{{Stream: todos, Since: off(todos, 7)}}},
		{name: "lastEventId query", query: "sub=demo/todos&lastEventId=" + url.QueryEscape(cursor),
			want: []sse.Subscription{{Stream: todos, Since: off(todos, 7)}}},
		{name: "cursor without the subscription keeps its @offset", query: "sub=demo/*@" + off(all, 4),
			header: http.Header{"Last-Event-ID": {cursor}}, want: []sse.Subscription{{Stream: all, Since: off(all, 4)}}},

		{name: "no sub", query: "token=x", status: 400, code: "bad_request", message: "no subscription"},
		{name: "no slash", query: "sub=demo", status: 400, code: "bad_request", message: `"demo"`},
		{name: "bad project", query: "sub=de%20mo/todos", status: 400, code: "bad_request", message: `project "de mo"`},
		{name: "bad collection", query: "sub=demo/to/dos", status: 400, code: "bad_request", message: `collection "to/dos"`},
		{name: "empty collection", query: "sub=demo/", status: 400, code: "bad_request", message: `collection ""`},
		{name: "bad offset", query: "sub=demo/todos@nope", status: 400, code: "bad_request", message: `"nope"`},
		{name: "empty offset", query: "sub=demo/todos@", status: 400, code: "bad_request", message: "offset after @"},
		{name: "twice", query: "sub=demo/todos&sub=demo/todos@" + off(todos, 1), status: 400, code: "bad_request", message: "demo/todos is subscribed twice"},
		{name: "too many", query: "sub=a/1&sub=a/2&sub=a/3&sub=a/4", status: 400, code: "limit_exceeded", message: "at most 3"},
		{name: "bad escape", query: "sub=demo/todos&x=%zz", status: 400, code: "bad_request", message: "%zz"},
		{name: "bad Last-Event-ID", query: "sub=demo/todos", header: http.Header{"Last-Event-Id": {"42"}},
			status: 400, code: "bad_request", message: `Last-Event-ID: bad Last-Event-ID: "42"`},
		{name: "bad lastEventId", query: "sub=demo/todos&lastEventId=1.zz", status: 400, code: "bad_request", message: "lastEventId: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/sse?"+tt.query, nil)
			for k, v := range tt.header {
				r.Header[http.CanonicalHeaderKey(k)] = v
			}
			req, err := sse.ParseRequest(r, 3)
			if tt.status != 0 {
				var re *sse.RequestError
				if !errors.As(err, &re) {
					t.Fatalf("got %v, %v; want a RequestError", req, err)
				}
				if re.Status != tt.status || re.Code != tt.code || !strings.Contains(re.Message, tt.message) {
					t.Fatalf("got %d %s %q; want %d %s containing %q", re.Status, re.Code, re.Message, tt.status, tt.code, tt.message)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Token != tt.token {
				t.Errorf("token %q, want %q", req.Token, tt.token)
			}
			if len(req.Subs) != len(tt.want) {
				t.Fatalf("subs %+v, want %+v", req.Subs, tt.want)
			}
			for i := range tt.want {
				if req.Subs[i] != tt.want[i] {
					t.Errorf("sub %d: %+v, want %+v", i, req.Subs[i], tt.want[i])
				}
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	req := &sse.Request{Subs: []sse.Subscription{{Stream: todos}, {Stream: users}}}
	tests := []struct {
		name    string
		claims  auth.Claims
		message string // "" when allowed
	}{
		{"every project", auth.Claims{Projects: []string{"*"}}, ""},
		{"both projects", auth.Claims{Projects: []string{"demo", "p2"}}, ""},
		{"second project missing", auth.Claims{Projects: []string{"demo"}}, `p2/users: forbidden: token does not grant project "p2"`},
		{"collection missing", auth.Claims{Projects: []string{"*"}, Collections: []string{"users"}}, `demo/todos: forbidden: token does not grant collection "todos"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sse.Authorize(&tt.claims, req)
			if tt.message == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var re *sse.RequestError
			if !errors.As(err, &re) || re.Status != 403 || re.Code != "forbidden" || re.Message != tt.message {
				t.Fatalf("got %v, want 403 forbidden %q", err, tt.message)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{&auth.TokenError{Reason: auth.ReasonSignature, Err: errors.New("signature is invalid")}, 401, "unauthorized"},
		{&auth.UnavailableError{Outcome: auth.OutcomeTimeout, Err: errors.New("timeout")}, 503, "unavailable"},
	}
	for _, tt := range tests {
		re := sse.Refusal(tt.err)
		if re.Status != tt.status || re.Code != tt.code {
			t.Errorf("Refusal(%v) = %d %s, want %d %s", tt.err, re.Status, re.Code, tt.status, tt.code)
		}
	}
}

func TestWriteError(t *testing.T) {
	for _, tt := range []struct {
		status int
		header string
	}{{401, "Www-Authenticate"}, {503, "Retry-After"}, {400, ""}} {
		w := httptest.NewRecorder()
		sse.WriteError(w, &sse.RequestError{Status: tt.status, Code: "c", Message: "m \"x\""})
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "c" || body.Error.Message != `m "x"` {
			t.Fatalf("%d: body %q (%v)", tt.status, w.Body, err)
		}
		if w.Code != tt.status || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
		}
		if tt.header != "" && w.Header().Get(tt.header) == "" {
			t.Errorf("%d: no %s header", tt.status, tt.header)
		}
	}
}
