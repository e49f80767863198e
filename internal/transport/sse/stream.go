package sse

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Event names of the stream's messages.
const (
	EventSubscribed = "subscribed"
	EventEvents     = "events"
	EventError      = "error"
)

// subscribedData is the data of a `subscribed` message: the WebSocket
// `subscribed` frame, without the request id a stream has none of.
type subscribedData struct {
	Op         string `json:"op"`
	Project    string `json:"project"`
	Collection string `json:"collection"`
	Offset     string `json:"offset"`
	Recovered  bool   `json:"recovered"`
}

// errorData is the data of an `error` message, as the WebSocket `error`
// frame.
type errorData struct {
	Op      string `json:"op"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// encoder writes one stream's messages in the text/event-stream format,
// keeping the stream's cursor: every `subscribed` and `events` message
// carries it as its id, so that whatever message the client saw last, its
// Last-Event-ID resumes every subscription from where that message left
// it. It is owned by the stream's writer.
type encoder struct {
	subs []Subscription
	pos  *positions
	b    []byte
}

func newEncoder(subs []Subscription) *encoder {
	return &encoder{subs: subs, pos: newPositions(subs)}
}

// subscribed appends subscription i's `subscribed` message. Its position
// becomes head, unless it resumes (recovered, with a since): the replay
// that follows moves it on from its since.
func (e *encoder) subscribed(i int, head string, recovered bool) {
	s := e.subs[i]
	if !recovered || s.Since == "" {
		e.pos.set(i, head)
	}
	data, _ := json.Marshal(subscribedData{Op: EventSubscribed, Project: s.Stream.Project,
		Collection: s.Stream.Collection, Offset: head, Recovered: recovered})
	e.message(EventSubscribed, data, true)
}

// events appends an `events` message of subscription i: frame is the
// WebSocket events frame, last the offset of its last event.
func (e *encoder) events(i int, frame []byte, last string) {
	e.pos.set(i, last)
	e.message(EventEvents, frame, true)
}

// fail appends an `error` message, which carries no id: the client's
// cursor stays that of the last subscribed or events message.
func (e *encoder) fail(code, message string) {
	data, _ := json.Marshal(errorData{Op: EventError, Code: code, Message: message})
	e.message(EventError, data, false)
}

// comment appends a comment line, which EventSource ignores: the
// keep-alive of an idle stream.
func (e *encoder) comment(text string) {
	e.b = append(e.b, ": "...)
	e.b = append(e.b, text...)
	e.b = append(e.b, "\n\n"...)
}

// retry appends the reconnection delay the browser should use.
func (e *encoder) retry(ms int) {
	e.b = append(e.b, "retry: "...)
	e.b = strconv.AppendInt(e.b, int64(ms), 10)
	e.b = append(e.b, "\n\n"...)
}

// message appends one message. JSON from encoding/json holds no line
// break, but data is split at every one (CR, LF or CRLF) anyway, since
// each would end the data line: the client joins data lines with LF,
// which JSON reads as the same whitespace.
func (e *encoder) message(event string, data []byte, withID bool) {
	e.b = append(e.b, "event: "...)
	e.b = append(e.b, event...)
	if withID {
		e.b = append(e.b, "\nid: "...)
		e.b = e.pos.appendID(e.b)
	}
	for {
		e.b = append(e.b, "\ndata: "...)
		n := bytes.IndexAny(data, "\r\n")
		if n < 0 {
			e.b = append(e.b, data...)
			break
		}
		e.b = append(e.b, data[:n]...)
		if data[n] == '\r' && n+1 < len(data) && data[n+1] == '\n' {
			n++
		}
		data = data[n+1:]
	}
	e.b = append(e.b, "\n\n"...)
}

// take returns what was appended since the last take and empties the
// buffer; the bytes are the caller's until the next append.
func (e *encoder) take() []byte {
	b := e.b
	e.b = e.b[:0]
	return b
}
