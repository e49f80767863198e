package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Client ops.
const (
	opAuth        = "auth"
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPing        = "ping"
)

// request is one client message. ID is kept raw and echoed verbatim.
type request struct {
	Op         string          `json:"op"`
	ID         json.RawMessage `json:"id,omitempty"`
	Token      string          `json:"token,omitempty"`
	Project    string          `json:"project,omitempty"`
	Collection string          `json:"collection,omitempty"`
	Since      string          `json:"since,omitempty"`
}

// errBadRequest is wrapped by every decoding failure.
var errBadRequest = errors.New("bad request")

// decodeRequest parses one client message. Unknown fields are ignored (newer
// clients may send more), but the op must be known and the id, when present,
// a string or a number of at most 128 bytes.
func decodeRequest(data []byte) (request, error) {
	var r request
	if err := json.Unmarshal(data, &r); err != nil {
		return request{}, fmt.Errorf("%w: message is not a JSON object: %v", errBadRequest, err)
	}
	if len(r.ID) > 0 {
		if len(r.ID) > 128 {
			return request{}, fmt.Errorf("%w: id is %d bytes, at most 128", errBadRequest, len(r.ID))
		}
		switch c := r.ID[0]; {
		case c == '"', c == '-', c >= '0' && c <= '9':
		case bytes.Equal(r.ID, []byte("null")):
			r.ID = nil
		default:
			return request{}, fmt.Errorf("%w: id must be a string or a number", errBadRequest)
		}
	}
	switch r.Op {
	case opAuth, opSubscribe, opUnsubscribe, opPing:
	case "":
		return r, fmt.Errorf("%w: field op is missing", errBadRequest)
	default:
		return r, fmt.Errorf("%w: unknown op %q", errBadRequest, clip(r.Op))
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Server frames. Each is encoded once with encoding/json.
type readyFrame struct {
	Op         string          `json:"op"`
	ID         json.RawMessage `json:"id,omitempty"`
	Connection string          `json:"connection"`
	User       string          `json:"user"`
	ExpiresAt  time.Time       `json:"expiresAt"`
}

type subscribedFrame struct {
	Op         string          `json:"op"`
	ID         json.RawMessage `json:"id,omitempty"`
	Project    string          `json:"project"`
	Collection string          `json:"collection"`
	Offset     string          `json:"offset"`
	Recovered  bool            `json:"recovered"`
}

type unsubscribedFrame struct {
	Op         string          `json:"op"`
	ID         json.RawMessage `json:"id,omitempty"`
	Project    string          `json:"project"`
	Collection string          `json:"collection"`
}

type errorFrame struct {
	Op      string          `json:"op"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

type pongFrame struct {
	Op string          `json:"op"`
	ID json.RawMessage `json:"id,omitempty"`
}

// encodeFrame marshals a server frame; the frame types cannot fail to encode.
func encodeFrame(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ws: encoding %T: %v", v, err))
	}
	return b
}

// eventsHeader is the constant start of a subscription's events frame.
func eventsHeader(project, collection string) []byte {
	p, _ := json.Marshal(project)
	c, _ := json.Marshal(collection)
	b := make([]byte, 0, 48+len(p)+len(c))
	b = append(b, `{"op":"events","project":`...)
	b = append(b, p...)
	b = append(b, `,"collection":`...)
	b = append(b, c...)
	b = append(b, `,"events":[`...)
	return b
}
