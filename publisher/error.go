package publisher

import (
	"errors"
	"fmt"
	"time"
)

// Error codes carried by Error. The first five are the gateway's own codes
// (SPEC.md); a client-side refusal uses CodeBadRequest like the server would.
const (
	CodeBadRequest    = "bad_request"
	CodeUnauthorized  = "unauthorized"
	CodeLimitExceeded = "limit_exceeded"
	CodeUnavailable   = "unavailable"
	CodeInternal      = "internal"
)

// Error is a publish the gateway (or, for events that fail validation, this
// package on its behalf) refused. Nothing of the refused request was
// published: the gateway validates a whole request before publishing any of
// it, and answers 503 only when the backplane took none of it.
//
// Test for it with errors.As:
//
//	var pe *publisher.Error
//	if errors.As(err, &pe) && pe.Code == publisher.CodeUnauthorized { ... }
type Error struct {
	// StatusCode is the HTTP status the gateway answered; 0 when the request
	// was never sent because the events failed validation here, or when the
	// error came from the Redis transport.
	StatusCode int
	// Code is the gateway's error code, e.g. "bad_request" or "unavailable".
	Code string
	// Message is the gateway's explanation. For client-side validation it is
	// the same text the gateway would have answered.
	Message string
	// Published is the number of events of the failed Publish call that were
	// published before this error: calls larger than one request (1,000
	// events or 1 MiB) are sent as several requests in order.
	Published int
	// RetryAfter is how long the gateway asked to wait before retrying (a
	// 503's Retry-After); 0 when it did not say.
	RetryAfter time.Duration

	err error // the cause, for errors.Is (syncgate.ErrInvalidEvent, ErrUnavailable)
}

func (e *Error) Error() string {
	var s string
	if e.StatusCode != 0 {
		s = fmt.Sprintf("syncgate publish: %d %s: %s", e.StatusCode, e.Code, e.Message)
	} else {
		s = fmt.Sprintf("syncgate publish: %s: %s", e.Code, e.Message)
	}
	if e.Published > 0 {
		s += fmt.Sprintf(" (%d earlier events of the call were published)", e.Published)
	}
	return s
}

// NewError returns an *Error with code, message and the cause Unwrap
// returns, for Transports: a cause wrapping ErrUnavailable (and not
// ErrUncertain) marks a failure after which nothing was published.
func NewError(code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, err: cause}
}

// Unwrap exposes the cause: syncgate.ErrInvalidEvent for events refused
// before sending, ErrUnavailable for 503 answers and Redis outages.
func (e *Error) Unwrap() error { return e.err }

// ErrUnavailable is wrapped by errors that mean the gateway or Redis could
// not be reached, or answered 503, after every allowed retry. Nothing of the
// failed request was published, except where the error also wraps
// ErrUncertain.
var ErrUnavailable = errors.New("syncgate unavailable")

// ErrUncertain is wrapped when the request reached the gateway (or Redis)
// but no answer came back (the connection broke or the context ended while
// waiting). The events may or may not have been published; the package
// never retries such a request, since publishing is not idempotent.
var ErrUncertain = errors.New("outcome unknown: the request was sent but no answer arrived")

// ErrClosed is returned by a Publisher or Batcher after Close.
var ErrClosed = errors.New("syncgate publisher closed")

// ErrQueueFull is returned by Batcher.Enqueue when the queue is full and
// BatcherConfig.NonBlocking is set.
var ErrQueueFull = errors.New("syncgate batcher queue full")

// invalid wraps a validation failure the way the gateway would word it.
func invalid(err error, index int, batch bool) *Error {
	msg := err.Error()
	if batch {
		msg = fmt.Sprintf("events[%d]: %v (nothing was published)", index, err)
	}
	return &Error{Code: CodeBadRequest, Message: msg, err: err} // err wraps syncgate.ErrInvalidEvent
}
