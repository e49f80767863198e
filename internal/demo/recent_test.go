package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
)

type nopReceiver struct{}

func (nopReceiver) Receive(backplane.Stream, backplane.Offset, *syncgate.Event) {}
func (nopReceiver) Reset(backplane.Stream, backplane.Offset)                    {}

var secret = []byte("0123456789abcdef0123456789abcdef")

func tokenFor(t *testing.T, sub string, projects, roles []string) string {
	t.Helper()
	tok, err := auth.SignHS256(secret, auth.Claims{Subject: sub, ExpiresAt: time.Now().Add(time.Hour), Projects: projects, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func get(t *testing.T, url, token string) (int, recentAnswer, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(res.Body).Decode(&raw)
	var ans recentAnswer
	_ = json.Unmarshal(raw, &ans)
	return res.StatusCode, ans, string(raw)
}

// TestRecent: the page gets the newest events it may see and the head to
// subscribe from; the endpoint is authorized like a subscription.
func TestRecent(t *testing.T) {
	ctx := context.Background()
	bp := backplane.NewMemory(backplane.MemoryConfig{HistorySize: RecentLimit + 6})
	if err := bp.Start(ctx, nopReceiver{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bp.Close() })
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Recent(bp, v))
	t.Cleanup(srv.Close)
	all := tokenFor(t, "u1", []string{"*"}, nil)

	// An empty stream: no events, its head.
	code, ans, body := get(t, srv.URL+"?project=demo", all)
	if code != 200 || len(ans.Events) != 0 || ans.Offset == "" || !ans.Complete {
		t.Fatalf("empty stream: %d %s", code, body)
	}

	events := []syncgate.Event{
		{Type: "document:created", Project: "demo", Collection: "todos", DocumentID: "t1", Document: json.RawMessage(`{"a":1}`)},
		{Type: "document:created", Project: "demo", Collection: "notes", DocumentID: "n1", Audience: &syncgate.Audience{Users: []string{"someone-else"}}},
		{Type: "document:updated", Project: "demo", Collection: "todos", DocumentID: "t1", Document: json.RawMessage(`{"a":2}`)},
		{Type: "insert", Project: "other", Collection: "todos", DocumentID: "x"},
	}
	if _, err := bp.Publish(ctx, events); err != nil {
		t.Fatal(err)
	}
	code, ans, body = get(t, srv.URL+"?project=demo", all)
	if code != 200 || !ans.Complete {
		t.Fatalf("%d %s", code, body)
	}
	var got []string
	for _, e := range ans.Events {
		got = append(got, e.Collection+"/"+e.DocumentID)
	}
	if want := "todos/t1 todos/t1"; strings.Join(got, " ") != want {
		t.Fatalf("events %q, want %q (the other user's event and the other project left out)", got, want)
	}
	// Subscribing from Offset continues after the last event: nothing is replayed twice.
	h, err := bp.History(ctx, backplane.Stream{Project: "demo", Collection: "*"}, ans.Offset, backplane.Page{})
	if err != nil || !h.Recovered || len(h.Events) != 0 {
		t.Fatalf("history after the answer's offset: %+v, %v", h, err)
	}
	if ans.Events[1].Offset == "" || ans.Events[1].Offset != ans.Offset {
		t.Fatalf("offsets: last event %q, head %q", ans.Events[1].Offset, ans.Offset)
	}

	// One collection; and only the newest RecentLimit events.
	more := make([]syncgate.Event, RecentLimit+5)
	for i := range more {
		more[i] = syncgate.Event{Type: "insert", Project: "demo", Collection: "many", DocumentID: fmt.Sprint("m", i)}
	}
	if _, err := bp.Publish(ctx, more); err != nil {
		t.Fatal(err)
	}
	code, ans, body = get(t, srv.URL+"?project=demo&collection=many", all)
	if code != 200 || len(ans.Events) != RecentLimit || ans.Complete || ans.Events[0].DocumentID != "m5" || ans.Events[RecentLimit-1].DocumentID != fmt.Sprint("m", RecentLimit+4) {
		t.Fatalf("limit: %d, %d events, complete %v: %.300s", code, len(ans.Events), ans.Complete, body)
	}
	// Trimmed history (the * stream keeps 106 of its 108 events): not readable from the start, so only its head.
	code, ans, body = get(t, srv.URL+"?project=demo", all)
	if code != 200 || len(ans.Events) != 0 || ans.Complete || ans.Offset == "" {
		t.Fatalf("trimmed: %d %.300s", code, body)
	}

	refusals := []struct {
		name, query, token string
		code               int
	}{
		{"no token", "?project=demo", "", 401},
		{"bad token", "?project=demo", "nope", 401},
		{"other project", "?project=demo", tokenFor(t, "u1", []string{"shop"}, nil), 403},
		{"bad name", "?project=de%20mo", all, 400},
		{"no project", "", all, 400},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, body := get(t, srv.URL+tt.query, tt.token); code != tt.code || !strings.Contains(body, `"error"`) {
				t.Fatalf("%d %s, want %d with an error body", code, body, tt.code)
			}
		})
	}
}
