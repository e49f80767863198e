package wstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate"
)

// Wait is how long Client methods wait for a frame before failing the test.
var Wait = 10 * time.Second

// Frame is any server frame, decoded.
type Frame struct {
	Op         string           `json:"op"`
	ID         json.RawMessage  `json:"id,omitempty"`
	Connection string           `json:"connection,omitempty"`
	User       string           `json:"user,omitempty"`
	ExpiresAt  time.Time        `json:"expiresAt,omitzero"`
	Project    string           `json:"project,omitempty"`
	Collection string           `json:"collection,omitempty"`
	Offset     string           `json:"offset,omitempty"`
	Recovered  bool             `json:"recovered,omitempty"`
	Events     []syncgate.Event `json:"events,omitempty"`
	Code       string           `json:"code,omitempty"`
	Message    string           `json:"message,omitempty"`
	Raw        []byte           `json:"-"`
}

// Client is a test WebSocket client.
type Client struct {
	t      testing.TB
	WS     *websocket.Conn
	frames chan Frame
	done   chan struct{}
	mu     sync.Mutex
	err    error // why reading stopped
}

// DialOptions tune Dial.
type DialOptions struct {
	Token  string      // sent as Authorization: Bearer unless FirstMessage
	Header http.Header // extra upgrade headers
	// FirstMessage sends the token as {"op":"auth"} instead of a header.
	FirstMessage bool
	// NoRead leaves the socket unread (a stalled client); Next then fails.
	NoRead bool
}

// Dial connects to wsURL. With a token it waits for `ready`.
func Dial(t testing.TB, wsURL string, o DialOptions) *Client {
	t.Helper()
	c, err := TryDial(t, wsURL, o)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	if o.Token != "" && !o.NoRead {
		if f := c.Next(); f.Op != "ready" {
			t.Fatalf("first frame: got %s (%s %s), want ready", f.Op, f.Code, f.Message)
		}
	}
	return c
}

// TryDial connects without failing the test; with FirstMessage it sends the
// auth message but does not wait for the answer.
func TryDial(t testing.TB, wsURL string, o DialOptions) (*Client, error) {
	t.Helper()
	h := http.Header{}
	for k, v := range o.Header {
		h[k] = v
	}
	if o.Token != "" && !o.FirstMessage {
		h.Set("Authorization", "Bearer "+o.Token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"syncgate.v1"}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	ws.SetReadLimit(16 << 20)
	c := &Client{t: t, WS: ws, frames: make(chan Frame, 1<<16), done: make(chan struct{})}
	t.Cleanup(func() { ws.CloseNow(); <-c.done })
	if o.NoRead {
		close(c.done)
	} else {
		go c.read()
	}
	if o.Token != "" && o.FirstMessage {
		c.Send(map[string]any{"op": "auth", "token": o.Token})
	}
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, data, err := c.WS.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var f Frame
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&f); err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("undecodable frame %q: %w", data, err)
			c.mu.Unlock()
			return
		}
		f.Raw = data
		select {
		case c.frames <- f:
		default:
			c.mu.Lock()
			c.err = errors.New("wstest: frame buffer full")
			c.mu.Unlock()
			return
		}
	}
}

// Send writes v as a JSON text frame (a string or []byte is sent as is).
func (c *Client) Send(v any) {
	c.t.Helper()
	var data []byte
	switch v := v.(type) {
	case string:
		data = []byte(v)
	case []byte:
		data = v
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := c.WS.Write(ctx, websocket.MessageText, data); err != nil {
		c.t.Fatalf("send %s: %v", clip(data), err)
	}
}

// Next returns the next frame, failing the test after Wait.
func (c *Client) Next() Frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection ended while waiting for a frame: %v", c.Err())
		}
		return f
	case <-time.After(Wait):
		c.t.Fatalf("no frame within %s", Wait)
	}
	return Frame{}
}

// Expect returns the next frame and fails unless its op is op.
func (c *Client) Expect(op string) Frame {
	c.t.Helper()
	f := c.Next()
	if f.Op != op {
		c.t.Fatalf("got frame %s, want %s", clip(f.Raw), op)
	}
	return f
}

// Subscribe subscribes and returns the `subscribed` frame.
func (c *Client) Subscribe(id, project, collection, since string) Frame {
	c.t.Helper()
	req := map[string]any{"op": "subscribe", "id": id, "project": project, "collection": collection}
	if since != "" {
		req["since"] = since
	}
	c.Send(req)
	f := c.Expect("subscribed")
	if string(f.ID) != `"`+id+`"` {
		c.t.Fatalf("subscribed id %s, want %q", f.ID, id)
	}
	return f
}

// Events reads events frames until n events arrived and returns them; any
// other frame fails the test.
func (c *Client) Events(n int) []syncgate.Event {
	c.t.Helper()
	var evs []syncgate.Event
	for len(evs) < n {
		f := c.Expect("events")
		evs = append(evs, f.Events...)
	}
	if len(evs) > n {
		c.t.Fatalf("got %d events, want %d", len(evs), n)
	}
	return evs
}

// Closed waits for the connection to end and returns its close code (-1
// when it ended without a close frame). Frames still buffered are dropped.
func (c *Client) Closed() websocket.StatusCode {
	c.t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return websocket.CloseStatus(c.Err())
			}
		case <-timeout:
			c.t.Fatalf("connection still open after %s", Wait)
		}
	}
}

// Err is why reading stopped, once it has.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func clip(b []byte) string {
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
