package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/auth"
)

// client is one WebSocket connection and its subscriptions. Its reader
// goroutine owns subs; the run reads them only after the reader ended.
type client struct {
	n       int
	ws      *websocket.Conn // -transport ws
	sse     *sseStream      // -transport sse
	subs    []*clientSub
	live    int    // subscriptions confirmed by `subscribed`
	closed  int    // close code when the gateway closed it, -1 for no close frame
	errMsg  string // why reading ended early, if it did
	protoEr uint64 // frames we could not understand
	protoMs string // the first of them
}

// clientSub is one subscription of a client.
type clientSub struct {
	stream     int
	project    string
	collection string
	seq        []SeqChecker // one per lane of the stream (config.lanes)
}

// counters shared by every client, read by the progress line.
type counters struct {
	established atomic.Int64
	failed      atomic.Int64
	subscribed  atomic.Int64
	disconnects atomic.Int64
	received    atomic.Int64 // events
	frames      atomic.Int64
	lastRecv    atomic.Int64 // unix nanos of the latest event frame
}

// dialers spreads connections over loopback source addresses, one
// http.Client each, so the 4-tuples of more than ~28k connections to one
// gateway port do not exhaust the ephemeral ports of one address.
type dialers []*http.Client

func newDialers(first, n int) dialers {
	d := make(dialers, n)
	for i := range d {
		nd := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(first+i))}}
		d[i] = &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, DisableKeepAlives: true}}
	}
	return d
}

// next reads the client's next frame (a WebSocket message, or an SSE
// message's data) into buf.
func (c *client) next(buf []byte) ([]byte, error) {
	if c.sse != nil {
		_, buf, err := c.sse.next(buf)
		return buf, err
	}
	// Read without a context: coder/websocket registers and removes a
	// context.AfterFunc per Reader call with a cancellable one, ~18% of
	// the load generator's CPU at 2,000 connections, which then sat in
	// the latency figures as the client's own delay. The run ends the
	// reads by closing the connections.
	return readFrame(context.Background(), c.ws, buf)
}

// close ends the client's connection, which ends its reader.
func (c *client) close() {
	if c.sse != nil {
		c.sse.close()
		return
	}
	c.ws.CloseNow()
}

// dial connects client n, authenticates with a freshly minted token, and
// subscribes to its streams; it returns once every subscription is live.
func (r *runner) dial(ctx context.Context, n int) (*client, error) {
	cfg := r.cfg
	if cfg.Transport == "sse" {
		return r.dialSSE(ctx, n)
	}
	base := cfg.URLs[n%len(cfg.URLs)]
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/v1/ws"
	token, err := auth.SignHS256([]byte(cfg.Secret), auth.Claims{
		Subject: "loadgen-" + strconv.Itoa(n), ExpiresAt: time.Now().Add(cfg.TokenTTL), Projects: []string{"*"},
	})
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{
		HTTPClient:   r.dialers[n%len(r.dialers)],
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
		Subprotocols: []string{"syncgate.v1"},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	ws.SetReadLimit(8 << 20)
	c := &client{n: n, ws: ws}
	var req []byte
	for j := 0; j < cfg.Subs; j++ {
		k := (n*cfg.Subs + j) % cfg.streams()
		p, col := cfg.stream(k)
		c.subs = append(c.subs, &clientSub{stream: k, project: p, collection: col, seq: make([]SeqChecker, cfg.lanes())})
		req = fmt.Appendf(req[:0], `{"op":"subscribe","id":%d,"project":%q,"collection":%q}`, j, p, col)
		if err := ws.Write(dctx, websocket.MessageText, req); err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	// Wait for ready and every subscribed; events cannot come before the
	// publishing phase, which starts after all clients are live.
	var buf []byte
	for c.live < cfg.Subs {
		buf, err = readFrame(dctx, ws, buf)
		if err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("waiting for subscribed: %w", err)
		}
		var f struct{ Op, Code, Message string }
		if err := json.Unmarshal(buf, &f); err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("undecodable frame %.100q", buf)
		}
		switch f.Op {
		case "ready":
		case "subscribed":
			c.live++
		case "error":
			ws.CloseNow()
			return nil, fmt.Errorf("gateway refused: %s: %s", f.Code, f.Message)
		default:
			ws.CloseNow()
			return nil, fmt.Errorf("unexpected frame %.100q before subscribed", buf)
		}
	}
	return c, nil
}

// readFrame reads one message into buf, reusing its storage: a busy client
// reads hundreds of thousands of frames and should not allocate each.
func readFrame(ctx context.Context, ws *websocket.Conn, buf []byte) ([]byte, error) {
	_, rd, err := ws.Reader(ctx)
	if err != nil {
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// read receives frames until ctx ends or the connection does, checking
// every event's sequence number and recording its latency.
func (r *runner) read(ctx context.Context, c *client) {
	buf := make([]byte, 0, 4096)
	var err error
	for {
		// ctx ends before the run closes the connections: it tells our
		// closes from the gateway's.
		buf, err = c.next(buf)
		if err != nil {
			if ctx.Err() == nil {
				c.closed = -1
				if c.ws != nil {
					c.closed = int(websocket.CloseStatus(err))
				}
				c.errMsg = err.Error()
				r.ctr.disconnects.Add(1)
			}
			return
		}
		now := time.Now()
		n, perr := r.handleFrame(c, buf, now)
		if perr != nil {
			c.protoEr++
			if c.protoMs == "" {
				c.protoMs = perr.Error()
			}
		}
		if n > 0 {
			r.ctr.received.Add(int64(n))
			r.ctr.frames.Add(1)
			r.ctr.lastRecv.Store(now.UnixNano())
		}
	}
}

var (
	eventsPrefix = []byte(`{"op":"events","project":"`)
	collKey      = []byte(`","collection":"`)
	docKey       = []byte(`"document":{"seq":`)
	tKey         = []byte(`,"t":`)
	laneKey      = []byte(`,"l":`)
)

// handleFrame checks one frame and returns how many events it held. It
// scans for the fields it needs instead of decoding JSON: the gateway's
// frame layout is fixed (hub.eventsHeader) and the documents are ours, and
// on a single core a full decode would measure the load generator rather
// than the gateway.
func (r *runner) handleFrame(c *client, b []byte, now time.Time) (int, error) {
	if !bytes.HasPrefix(b, eventsPrefix) {
		var f struct{ Op, Code, Message string }
		if err := json.Unmarshal(b, &f); err != nil {
			return 0, fmt.Errorf("undecodable frame %.100q", b)
		}
		if f.Op == "pong" {
			return 0, nil
		}
		return 0, fmt.Errorf("unexpected %s frame: %s %s", f.Op, f.Code, f.Message)
	}
	rest := b[len(eventsPrefix):]
	i := bytes.IndexByte(rest, '"')
	if i < 0 || !bytes.HasPrefix(rest[i:], collKey) {
		return 0, fmt.Errorf("malformed events frame %.100q", b)
	}
	project := rest[:i]
	rest = rest[i+len(collKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, fmt.Errorf("malformed events frame %.100q", b)
	}
	collection := rest[:j]
	rest = rest[j:]
	var sub *clientSub
	for _, s := range c.subs {
		if string(project) == s.project && string(collection) == s.collection {
			sub = s
			break
		}
	}
	if sub == nil {
		return 0, fmt.Errorf("events for %s/%s, which this client did not subscribe to", project, collection)
	}
	n := 0
	for {
		k := bytes.Index(rest, docKey)
		if k < 0 {
			break
		}
		rest = rest[k+len(docKey):]
		seq, m := parseUint(rest)
		if m == 0 || !bytes.HasPrefix(rest[m:], tKey) {
			return n, fmt.Errorf("event document without seq and t in %.100q", b)
		}
		rest = rest[m+len(tKey):]
		t, m := parseUint(rest)
		if m == 0 {
			return n, fmt.Errorf("event document without t in %.100q", b)
		}
		rest = rest[m:]
		lane := 0
		if bytes.HasPrefix(rest, laneKey) {
			l, m := parseUint(rest[len(laneKey):])
			if m == 0 || l >= uint64(len(sub.seq)) {
				return n, fmt.Errorf("event document with a bad lane in %.100q", b)
			}
			lane, rest = int(l), rest[len(laneKey)+m:]
		}
		sub.seq[lane].Observe(seq)
		r.latency.Record(now.Sub(time.Unix(0, int64(t))))
		n++
	}
	if n == 0 {
		return 0, errors.New("events frame without loadgen events")
	}
	return n, nil
}

// parseUint reads leading decimal digits, returning the value and how many
// bytes it used.
func parseUint(b []byte) (uint64, int) {
	var v uint64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 20 {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, i
}
