package wsconn

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// acceptGUID is RFC 6455's key suffix (section 1.3).
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Accept upgrades r to a WebSocket (RFC 6455, version 13, no extensions)
// and returns the socket. A request that is no valid upgrade, or comes
// from an origin cfg does not allow, is answered with an HTTP error that
// says why, and Accept returns that error.
//
// The socket keeps no buffer of its own while idle: frames are read
// straight from the hijacked connection (client frames are few and
// small), and the 101 response is written on it directly, so none of
// net/http's per-connection buffers outlives the upgrade.
func Accept(w http.ResponseWriter, r *http.Request, cfg Config) (*Socket, error) {
	if code, err := verifyUpgrade(w, r); err != nil {
		http.Error(w, err.Error(), code)
		return nil, err
	}
	if err := authenticateOrigin(r, cfg.OriginPatterns); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return nil, err
	}
	proto := selectSubprotocol(r, cfg.Subprotocols)
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		err = fmt.Errorf("wsconn: hijack: %w", err)
		http.Error(w, http.StatusText(http.StatusNotImplemented), http.StatusNotImplemented)
		return nil, err
	}
	if cfg.StallLimit <= 0 {
		cfg.StallLimit = 10 * time.Second
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = 32 << 10
	}
	s := &Socket{nc: nc, stall: cfg.StallLimit, m: cfg.Metrics, readLimit: cfg.ReadLimit}
	s.out.Conn, s.out.stall = nc, cfg.StallLimit
	// Bytes net/http read past the request are the first frames.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		s.pending = bytes.Clone(b)
	}
	resp := make([]byte, 0, 160)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = append(resp, acceptKey(strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key")))...)
	if proto != "" {
		resp = append(resp, "\r\nSec-WebSocket-Protocol: "...)
		resp = append(resp, proto...)
	}
	resp = append(resp, "\r\n\r\n"...)
	if err = nc.SetWriteDeadline(time.Now().Add(cfg.StallLimit)); err == nil {
		_, err = nc.Write(resp)
		_ = nc.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("wsconn: write the 101 response: %w", err)
	}
	s.room = newRoom(nc)
	return s, nil
}

// verifyUpgrade checks that r is a WebSocket upgrade (RFC 6455 section
// 4.2.1); it returns the HTTP status to refuse it with.
func verifyUpgrade(w http.ResponseWriter, r *http.Request) (int, error) {
	if !r.ProtoAtLeast(1, 1) {
		return http.StatusUpgradeRequired, fmt.Errorf("WebSocket protocol violation: handshake request must be at least HTTP/1.1: %q", r.Proto)
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		return http.StatusUpgradeRequired, fmt.Errorf("WebSocket protocol violation: Connection header %q does not contain Upgrade", r.Header.Get("Connection"))
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		return http.StatusUpgradeRequired, fmt.Errorf("WebSocket protocol violation: Upgrade header %q does not contain websocket", r.Header.Get("Upgrade"))
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, fmt.Errorf("WebSocket protocol violation: handshake request method is not GET but %q", r.Method)
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return http.StatusBadRequest, fmt.Errorf("unsupported WebSocket protocol version (only 13 is supported): %q", v)
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	switch {
	case len(keys) == 0:
		return http.StatusBadRequest, errors.New("WebSocket protocol violation: missing Sec-WebSocket-Key")
	case len(keys) > 1:
		return http.StatusBadRequest, errors.New("WebSocket protocol violation: multiple Sec-WebSocket-Key headers")
	}
	key := strings.TrimSpace(keys[0])
	if v, err := base64.StdEncoding.DecodeString(key); err != nil || len(v) != 16 {
		return http.StatusBadRequest, fmt.Errorf("WebSocket protocol violation: invalid Sec-WebSocket-Key %q, must be a 16 byte base64 encoded string", key)
	}
	return 0, nil
}

// headerHasToken reports whether a comma-separated header lists token
// (case-insensitively).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// authenticateOrigin allows a request without Origin (not a browser), one
// from the same host, or one whose origin host matches a pattern
// (path.Match, case-insensitive; a pattern with "://" matches
// scheme://host). cmd/gateway's origin log uses the same rule.
func authenticateOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("failed to parse Origin header %q: %w", origin, err)
	}
	if strings.EqualFold(r.Host, u.Host) {
		return nil
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		ok, err := path.Match(strings.ToLower(p), strings.ToLower(target))
		if err != nil {
			return fmt.Errorf("origin pattern %q: %w", p, err)
		}
		if ok {
			return nil
		}
	}
	if u.Host == "" {
		return fmt.Errorf("request Origin %q is not a valid URL with a host", origin)
	}
	return fmt.Errorf("request Origin %q is not authorized for Host %q", u.Host, r.Host)
}

// selectSubprotocol returns the first of ours the client offers, or "".
func selectSubprotocol(r *http.Request, ours []string) string {
	for _, p := range ours {
		for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
			for _, offered := range strings.Split(v, ",") {
				if strings.TrimSpace(offered) == p {
					return p
				}
			}
		}
	}
	return ""
}

// acceptKey is Sec-WebSocket-Accept for key.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
