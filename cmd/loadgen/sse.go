package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
)

// sseStream is one client's /v1/sse response: a reader of its event
// stream and the means to end it.
type sseStream struct {
	body   io.ReadCloser
	rd     *bufio.Reader
	cancel context.CancelFunc
	line   []byte // a line longer than rd's buffer, gathered
}

// dialSSE opens client n's stream on /v1/sse with one sub= per
// subscription and returns once every `subscribed` message arrived.
func (r *runner) dialSSE(ctx context.Context, n int) (*client, error) {
	cfg := r.cfg
	base := cfg.URLs[n%len(cfg.URLs)]
	token, err := auth.SignHS256([]byte(cfg.Secret), auth.Claims{
		Subject: "loadgen-" + strconv.Itoa(n), ExpiresAt: time.Now().Add(cfg.TokenTTL), Projects: []string{"*"},
	})
	if err != nil {
		return nil, err
	}
	c := &client{n: n}
	q := url.Values{}
	for j := 0; j < cfg.Subs; j++ {
		k := (n*cfg.Subs + j) % cfg.streams()
		p, col := cfg.stream(k)
		c.subs = append(c.subs, &clientSub{stream: k, project: p, collection: col, seq: make([]SeqChecker, cfg.lanes())})
		q.Add("sub", p+"/"+col)
	}
	// The stream outlives this call: its context ends only when the
	// client is closed, or when it is not subscribed within 30 s.
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	timeout := time.AfterFunc(30*time.Second, cancel)
	live := false
	defer func() {
		timeout.Stop()
		stop()
		if !live {
			cancel()
		}
	}()
	fail := func(err error) (*client, error) { return nil, err }
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, base+"/v1/sse?"+q.Encode(), nil)
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := r.dialers[n%len(r.dialers)].Do(req)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return fail(fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b)))
	}
	st := &sseStream{body: resp.Body, rd: bufio.NewReaderSize(resp.Body, 4096), cancel: cancel}
	c.sse = st
	var buf []byte
	for c.live < cfg.Subs {
		var event string
		event, buf, err = st.next(buf)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("waiting for subscribed: %w", err)
		}
		if event != "subscribed" {
			st.close()
			return nil, fmt.Errorf("unexpected %q message %.100q before subscribed", event, buf)
		}
		var f struct{ Op string }
		if err := json.Unmarshal(buf, &f); err != nil || f.Op != "subscribed" {
			st.close()
			return nil, fmt.Errorf("undecodable subscribed message %.100q", buf)
		}
		c.live++
	}
	live = true
	return c, nil
}

// next reads the stream up to the end of the next message with data and
// returns its event name and its data (the lines joined by "\n", as
// EventSource does), in buf's storage. Comments, ids and retry fields are
// skipped.
func (s *sseStream) next(buf []byte) (string, []byte, error) {
	buf = buf[:0]
	event, hasData := "", false
	for {
		line, err := s.readLine()
		if err != nil {
			return "", buf, err
		}
		if len(line) == 0 { // the end of a message
			if hasData {
				if event == "" {
					event = "message"
				}
				return event, buf, nil
			}
			event = ""
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "": // a comment (keep-alive)
		case "event":
			event = string(value)
		case "data":
			if hasData {
				buf = append(buf, '\n')
			}
			buf, hasData = append(buf, value...), true
		}
	}
}

// readLine returns the next line without its end (LF or CRLF); it is
// valid until the next call.
func (s *sseStream) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		b, err := s.rd.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.line = append(s.line, b...)
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(s.line) > 0 {
			b = append(s.line, b...)
			s.line = b
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		return bytes.TrimSuffix(b, []byte("\r")), nil
	}
}

// close ends the stream.
func (s *sseStream) close() {
	s.cancel()
	_ = s.body.Close()
}
