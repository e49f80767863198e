package hub

import (
	"strconv"

	"github.com/coder/websocket"
)

// CloseCode is a WebSocket close status the server sends. The 4xxx range is
// syncgate's own (see SPEC.md); 1xxx codes are standard.
type CloseCode websocket.StatusCode

// Close codes of the protocol.
const (
	CloseUnauthorized   CloseCode = 4001 // bad or missing token
	CloseForbidden      CloseCode = 4003 // token refused for this connection
	CloseSlowConsumer   CloseCode = 4008 // outbound queue overflowed; reconnect and resume
	CloseTokenExpired   CloseCode = 4009 // refresh the token and reconnect
	CloseProtocolError  CloseCode = 4400 // a frame the protocol does not allow
	CloseServiceRestart CloseCode = 1012 // node draining; reconnect, maybe elsewhere
	CloseTryAgainLater  CloseCode = 1013 // node full
	CloseInternalError  CloseCode = 1011 // a panic in the connection's goroutines; reconnect
	CloseNormal         CloseCode = 1000
)

// Error makes a CloseCode usable as an error value.
func (c CloseCode) Error() string { return "websocket close " + strconv.Itoa(int(c)) }
