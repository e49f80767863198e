package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/server"
	"github.com/syncgate/syncgate/internal/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPublishStatuses(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: wstest.Token(t, "u", time.Hour, []string{"p"}, nil, nil)})
	c.Subscribe("s", "p", "c", "")

	valid := `{"type":"insert","project":"p","collection":"c","document":{"a":1}}`
	bigDoc := `{"type":"insert","project":"p","collection":"c","document":"` + strings.Repeat("x", 300<<10) + `"}`
	tests := []struct {
		name   string
		key    string
		body   string
		status int
		code   string
		msg    string
	}{
		{"no key", "", valid, 401, "unauthorized", "publish key"},
		{"wrong key", "nope", valid, 401, "unauthorized", "publish key"},
		{"not json", wstest.Key, `{`, 400, "bad_request", "not a JSON object"},
		{"missing type", wstest.Key, `{"project":"p","collection":"c"}`, 400, "bad_request", `type ""`},
		{"bad type", wstest.Key, `{"type":"Insert!","project":"p","collection":"c"}`, 400, "bad_request", `type "Insert!"`},
		{"bad project", wstest.Key, `{"type":"insert","project":"p p","collection":"c"}`, 400, "bad_request", `project "p p"`},
		{"wildcard collection", wstest.Key, `{"type":"insert","project":"p","collection":"*"}`, 400, "bad_request", `collection "*"`},
		{"unknown field", wstest.Key, `{"type":"insert","project":"p","collection":"c","docId":"x"}`, 400, "bad_request", "docId"},
		{"field in the wrong case", wstest.Key, `{"type":"insert","project":"p","collection":"c","documentID":"x"}`, 400, "bad_request", `unknown field "documentID"`},
		{"offset set", wstest.Key, `{"type":"insert","project":"p","collection":"c","offset":"x"}`, 400, "bad_request", "offset"},
		{"empty audience", wstest.Key, `{"type":"insert","project":"p","collection":"c","audience":{}}`, 400, "bad_request", "audience"},
		{"event over 256 KiB", wstest.Key, bigDoc, 400, "bad_request", "exceeds 262144"},
		{"empty batch", wstest.Key, `{"events":[]}`, 400, "bad_request", "empty"},
		{"batch with other fields", wstest.Key, `{"events":[` + valid + `],"type":"x"}`, 400, "bad_request", "only the field"},
		{"batch with events twice", wstest.Key, `{"events":[` + valid + `],"events":[` + valid + `]}`, 400, "bad_request", "only the field"},
		{"duplicate project", wstest.Key, `{"type":"insert","project":"p","collection":"c","project":"other"}`, 400, "bad_request", `duplicate field "project"`},
		{"unknown audience field", wstest.Key, `{"type":"insert","project":"p","collection":"c","audience":{"users":["u"],"group":"g"}}`, 400, "bad_request", `audience has unknown field "group"`},
		{"invalid UTF-8 in documentId", wstest.Key, "{\"type\":\"insert\",\"project\":\"p\",\"collection\":\"c\",\"documentId\":\"d\xff\"}", 400, "bad_request", "documentId is not valid UTF-8"},
		{"invalid event in batch", wstest.Key, `{"events":[` + valid + `,{"type":"insert","project":"p"}]}`, 400, "bad_request", "events[1]"},
		{"body over 1 MiB", wstest.Key, `{"events":[` + strings.Repeat(valid+",", 2<<20/len(valid)) + valid + `]}`, 413, "limit_exceeded", "1048576"},
		{"over 1000 events", wstest.Key, `{"events":[` + strings.Repeat(`{"type":"a","project":"p","collection":"c"},`, 1000) + `{"type":"a","project":"p","collection":"c"}]}`, 413, "limit_exceeded", "1001 events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := n.PublishRaw(t, tt.key, []byte(tt.body))
			var resp struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("answer %q is not JSON: %v", body, err)
			}
			if status != tt.status || resp.Error.Code != tt.code || !strings.Contains(resp.Error.Message, tt.msg) {
				t.Fatalf("got %d %s, want %d %s containing %q", status, body, tt.status, tt.code, tt.msg)
			}
		})
	}
	// Nothing of the refused bodies reached the subscriber: the next event
	// is the first it sees.
	offs := n.Publish(t, wstest.Doc("p", "c", 42))
	if got := c.Events(1); got[0].Offset != offs[0] || wstest.Seq(t, got[0]) != 42 {
		t.Fatalf("after refused publishes got %+v", got)
	}
	// A single event answers one offset and keeps a publisher timestamp.
	status, body := n.PublishRaw(t, wstest.Key, []byte(`{"type":"insert","project":"p","collection":"c","timestamp":"2026-11-22T10:00:00.123Z"}`))
	if status != 200 || !strings.Contains(string(body), `"offsets":["`) {
		t.Fatalf("single publish: %d %s", status, body)
	}
	if got := c.Events(1); !got[0].Timestamp.Equal(time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)) {
		t.Fatalf("timestamp %v not kept", got[0].Timestamp)
	}
}

// downPublisher is a backplane publisher that is unreachable.
type downPublisher struct{ calls int }

func (d *downPublisher) Publish(context.Context, []syncgate.Event) ([]string, error) {
	d.calls++
	return nil, fmt.Errorf("redis: dial tcp: %w", backplane.ErrUnavailable)
}

func TestPublishUnavailableAndReadiness(t *testing.T) {
	v, _ := auth.NewVerifier(auth.Config{Secret: []byte(wstest.Secret)})
	bp := backplane.NewMemory(backplane.MemoryConfig{})
	h, err := hub.New(hub.Config{Verifier: v}, bp)
	if err != nil {
		t.Fatal(err)
	}
	down := &downPublisher{}
	notReady := errors.New("redis unreachable")
	srv := httptest.NewServer(server.Handler(server.Config{Hub: h, Publisher: down, Keys: auth.ParseKeys("k1, k2"), Ready: func() error { return notReady }}))
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/v1/publish", bytes.NewReader([]byte(`{"type":"insert","project":"p","collection":"c"}`)))
	req.Header.Set("Authorization", "Bearer k2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || down.calls != 1 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("publish with the backplane down: %d after %d calls", resp.StatusCode, down.calls)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestReadyzDraining(t *testing.T) {
	n := wstest.StartNode(t, wstest.NodeConfig{})
	get := func() int {
		resp, err := http.Get(n.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(); s != 200 {
		t.Fatalf("readyz %d before drain", s)
	}
	if err := n.Hub.Drain(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if s := get(); s != 503 {
		t.Fatalf("readyz %d while draining, want 503", s)
	}
}

type slowPublisher struct{}

func (slowPublisher) Publish(ctx context.Context, _ []syncgate.Event) ([]string, error) {
	return nil, fmt.Errorf("fcall: %w", context.DeadlineExceeded)
}

// TestPublishTimeoutIsNotUnavailable: a publish that may have reached the
// backplane answers 504, never the "nothing was published" 503 that
// publishers retry.
func TestPublishTimeoutIsNotUnavailable(t *testing.T) {
	v, _ := auth.NewVerifier(auth.Config{Secret: []byte(wstest.Secret)})
	h, err := hub.New(hub.Config{Verifier: v}, backplane.NewMemory(backplane.MemoryConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.Handler(server.Config{Hub: h, Publisher: slowPublisher{}, Keys: auth.ParseKeys("k")}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/publish", strings.NewReader(`{"type":"insert","project":"p","collection":"c"}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}

// TestBearerSchemeAnyCase checks that publish and /v1/ws agree on the
// Authorization header: the scheme is case-insensitive (RFC 7235)
// everywhere, and another scheme is refused everywhere.
func TestBearerSchemeAnyCase(t *testing.T) {
	// A socket without a usable header token waits for an auth message:
	// a short AuthTimeout ends that wait with 4001.
	n := wstest.StartNode(t, wstest.NodeConfig{Hub: hub.Config{AuthTimeout: 200 * time.Millisecond}})
	token := wstest.Token(t, "u", time.Hour, []string{"p"}, nil, nil)
	body := `{"type":"insert","project":"p","collection":"c"}`
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEARER"} {
		t.Run(scheme, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, n.URL+"/v1/publish", strings.NewReader(body))
			req.Header.Set("Authorization", scheme+" "+wstest.Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("publish with %q: %d, want 200", scheme, resp.StatusCode)
			}
			c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Header: http.Header{"Authorization": {scheme + " " + token}}})
			c.Expect("ready")
		})
	}
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/v1/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Basic "+wstest.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("publish with the Basic scheme: %d, want 401", resp.StatusCode)
	}
	c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Header: http.Header{"Authorization": {"Basic " + token}}})
	if code := c.Closed(); code != 4001 {
		t.Fatalf("/v1/ws with the Basic scheme closed with %d, want 4001", code)
	}
}
