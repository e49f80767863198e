package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// httpTransport posts to /v1/publish.
//
// Retry policy: publishing is not idempotent (the gateway has no
// de-duplication), so a request is tried again only when it certainly was
// not applied:
//   - no connection to the gateway could be made (refused, DNS, dial
//     timeout): nothing was sent;
//   - the gateway answered 503: its contract is that nothing of the request
//     was published;
//   - 429 from a proxy in front of it: the request was not forwarded.
//
// Anything else that breaks after the request was written (a reset
// connection, a context that ends while waiting, a 502/504 from a proxy) is
// returned at once wrapping ErrUncertain. Go's http.Transport additionally
// retries a request on a reused keep-alive connection that the server had
// closed before reading anything, which is likewise safe.
type httpTransport struct {
	endpoint  string
	auth      string
	userAgent string
	client    *http.Client
	ownClient bool
}

func newHTTPTransport(cfg Config) (*httpTransport, error) {
	t := &httpTransport{
		endpoint:  strings.TrimRight(cfg.URL, "/") + "/v1/publish",
		auth:      "Bearer " + cfg.Key,
		userAgent: cfg.UserAgent,
		client:    cfg.HTTPClient,
	}
	if t.userAgent == "" {
		t.userAgent = "syncgate-publisher-go"
	}
	if t.client == nil {
		t.client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}}
		t.ownClient = true
	}
	return t, nil
}

// Close implements Transport.
func (t *httpTransport) Close() error {
	if t.ownClient {
		t.client.CloseIdleConnections()
	}
	return nil
}

// Send implements Transport: one POST, its 503 or 429 carrying the
// server's Retry-After.
func (t *httpTransport) Send(ctx context.Context, batch []Encoded) ([]string, error) {
	offsets, retryAfter, err := t.post(ctx, bodyOf(batch), len(batch))
	var pe *Error
	if retryAfter > 0 && errors.As(err, &pe) {
		pe.RetryAfter = retryAfter
	}
	return offsets, err
}

// post makes one attempt. retryAfter is negative when the request must not
// be retried, otherwise the server's Retry-After (possibly zero).
func (t *httpTransport) post(ctx context.Context, body []byte, n int) (offsets []string, retryAfter time.Duration, err error) {
	var gotConn atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, t.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, -1, &Error{Code: CodeBadRequest, Message: err.Error(), err: err}
	}
	req.Header.Set("Authorization", t.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", t.userAgent)
	resp, err := t.client.Do(req)
	if err != nil {
		if !gotConn.Load() && ctx.Err() == nil {
			return nil, 0, &Error{Code: CodeUnavailable, Message: "cannot reach the gateway: " + err.Error(), err: errors.Join(ErrUnavailable, err)}
		}
		if !gotConn.Load() {
			return nil, -1, &Error{Code: CodeUnavailable, Message: "no connection to the gateway before the deadline: " + err.Error(), err: errors.Join(ErrUnavailable, err)}
		}
		return nil, -1, uncertain(0, err)
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK {
		if rerr != nil {
			return nil, -1, uncertain(resp.StatusCode, rerr)
		}
		var ok struct {
			Offsets []string `json:"offsets"`
		}
		if err := json.Unmarshal(data, &ok); err != nil || len(ok.Offsets) != n {
			return nil, -1, &Error{StatusCode: resp.StatusCode, Code: CodeInternal,
				Message: fmt.Sprintf("unexpected answer for %d events: %.200q", n, data), err: ErrUncertain}
		}
		return ok.Offsets, 0, nil
	}
	e := &Error{StatusCode: resp.StatusCode}
	var apiErr struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &apiErr) == nil && apiErr.Error.Code != "" {
		e.Code, e.Message = apiErr.Error.Code, apiErr.Error.Message
	} else {
		e.Code, e.Message = codeForStatus(resp.StatusCode), fmt.Sprintf("%s: %.200q", http.StatusText(resp.StatusCode), bytes.TrimSpace(data))
	}
	switch resp.StatusCode {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		e.err = ErrUnavailable
		return nil, retryAfterOf(resp.Header.Get("Retry-After")), e
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		e.err = errors.Join(ErrUnavailable, ErrUncertain)
	}
	return nil, -1, e
}

func uncertain(status int, cause error) *Error {
	return &Error{StatusCode: status, Code: CodeUnavailable,
		Message: "the request was sent but no answer arrived; the events may or may not be published: " + cause.Error(),
		err:     errors.Join(ErrUnavailable, ErrUncertain, cause)}
}

// withCause adds cause (the context's error) to a retryable error returned
// when the context ended during backoff.
func withCause(err, cause error) error {
	var pe *Error
	if errors.As(err, &pe) {
		pe.Message += " (gave up: " + cause.Error() + ")"
		pe.err = errors.Join(pe.err, cause)
		return pe
	}
	return errors.Join(err, cause)
}

func codeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return CodeUnauthorized
	case status == http.StatusRequestEntityTooLarge:
		return CodeLimitExceeded
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests ||
		status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
		return CodeUnavailable
	case status >= 400 && status < 500:
		return CodeBadRequest
	default:
		return CodeInternal
	}
}

func retryAfterOf(h string) time.Duration {
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	return 0
}
