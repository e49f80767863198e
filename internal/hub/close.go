package hub

import (
	"strconv"
)

// CloseCode is the status a session is closed with; every transport uses
// the same values. The 4xxx range is syncgate's own (see SPEC.md); 1xxx
// codes are WebSocket's. SSE, which has no close frame, ends the stream
// and tells the client in its own words.
type CloseCode int

// Close codes of the protocols.
const (
	CloseNormal         CloseCode = 1000
	CloseAbnormal       CloseCode = 1006 // cut without a close frame (never sent)
	CloseInternalError  CloseCode = 1011 // a panic in the session's goroutines; reconnect
	CloseServiceRestart CloseCode = 1012 // node draining, or a stream lost events; reconnect, maybe elsewhere
	CloseTryAgainLater  CloseCode = 1013 // node full
	CloseUnauthorized   CloseCode = 4001 // bad or missing token
	CloseForbidden      CloseCode = 4003 // token refused for this connection
	CloseSlowConsumer   CloseCode = 4008 // outbound queue overflowed; reconnect and resume
	CloseTokenExpired   CloseCode = 4009 // refresh the token and reconnect
	CloseProtocolError  CloseCode = 4400 // a frame the protocol does not allow
)

// Error makes a CloseCode usable as an error value.
func (c CloseCode) Error() string { return "close " + strconv.Itoa(int(c)) }

// Error codes of failed requests, shared by the transports (the native
// `error` frame, Socket.IO's failed acks, the SSE error body).
const (
	CodeBadRequest    = "bad_request"
	CodeForbidden     = "forbidden"
	CodeNotFound      = "not_found"
	CodeLimitExceeded = "limit_exceeded"
	CodeUnauthorized  = "unauthorized"
	CodeInternal      = "internal"
	// CodeDuplicate is Session.Open's answer for a key the session already
	// holds; each transport says it its own way (the native protocol with
	// bad_request, Socket.IO with success).
	CodeDuplicate = "duplicate"
)

// Error is a refused request: the code of the transports' error tables and
// a message for the client.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func refused(code, msg string) *Error { return &Error{Code: code, Message: msg} }
