package sse

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
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

// Event names of the stream's messages.
const (
	EventSubscribed = "subscribed"
	EventEvents     = "events"
	EventError      = "error"
)

// encodeSubscribed is the data of sub's `subscribed` message.
func encodeSubscribed(sub Subscription, head string, recovered bool) []byte {
	data, _ := json.Marshal(subscribedData{Op: EventSubscribed, Project: sub.Stream.Project,
		Collection: sub.Stream.Collection, Offset: head, Recovered: recovered})
	return data
}

// eventsHeader is the start of the data of sub's `events` messages: the
// WebSocket events frame up to its first event.
func eventsHeader(sub Subscription) []byte {
	data, _ := json.Marshal(struct {
		Op         string `json:"op"`
		Project    string `json:"project"`
		Collection string `json:"collection"`
	}{EventEvents, sub.Stream.Project, sub.Stream.Collection})
	return append(data[:len(data)-1], `,"events":[`...)
}

// encoder writes one stream's messages in the text/event-stream format,
// keeping the stream's cursor: every `subscribed` and `events` message
// carries it as its id, so that whatever message the client saw last, its
// Last-Event-ID resumes every subscription from where that message left
// it. It is owned by the stream's writer.
type encoder struct {
	subs   []Subscription
	pos    *positions
	b      []byte
	events int // events in the open events message
}

func newEncoder(subs []Subscription) *encoder {
	return &encoder{subs: subs, pos: newPositions(subs)}
}

// subscribed appends subscription i's `subscribed` message with data
// (encodeSubscribed). Its position becomes head, unless it resumes
// (recovered, with a since): the replay that follows moves it on from its
// since.
func (e *encoder) subscribed(i int, head string, recovered bool, data []byte) {
	if !recovered || e.subs[i].Since == "" {
		e.pos.set(i, head)
	}
	e.b = append(e.b, "event: "+EventSubscribed+"\ndata: "...)
	e.appendData(data)
	e.endMessage(true)
}

// startEvents opens an `events` message whose data starts with header
// (eventsHeader); addEvent appends each event's JSON, endEvents closes it.
func (e *encoder) startEvents(header []byte) {
	e.b = append(e.b, "event: "+EventEvents+"\ndata: "...)
	e.b = append(e.b, header...)
	e.events = 0
}

func (e *encoder) addEvent(data []byte) {
	if e.events > 0 {
		e.b = append(e.b, ',')
	}
	e.events++
	e.appendData(data)
}

// endEvents closes the events message of subscription i, whose last event
// has offset last: the subscription's position from now on.
func (e *encoder) endEvents(i int, last string) {
	e.b = append(e.b, "]}"...)
	e.pos.set(i, last)
	e.endMessage(true)
}

// fail appends an `error` message, which carries no id: the client's
// cursor stays that of the last subscribed or events message.
func (e *encoder) fail(code, message string) {
	data, _ := json.Marshal(errorData{Op: EventError, Code: code, Message: message})
	e.b = append(e.b, "event: "+EventError+"\ndata: "...)
	e.appendData(data)
	e.endMessage(false)
}

// comment appends a comment line, which EventSource ignores: the
// keep-alive of an idle stream, or a word for curl users.
func (e *encoder) comment(text string) {
	e.b = append(e.b, ':')
	if text != "" {
		e.b = append(e.b, ' ')
		e.b = append(e.b, strings.ReplaceAll(strings.ReplaceAll(text, "\r", " "), "\n", " ")...)
	}
	e.b = append(e.b, "\n\n"...)
}

// retry appends the reconnection delay the browser should use.
func (e *encoder) retry(ms int64) {
	e.b = append(e.b, "retry: "...)
	e.b = strconv.AppendInt(e.b, ms, 10)
	e.b = append(e.b, "\n\n"...)
}

// appendData appends data to the open data line. JSON from encoding/json
// holds no line break, but data is split at every one (CR, LF or CRLF)
// anyway, since each would end the line: the client joins data lines with
// LF, which JSON reads as the same whitespace.
func (e *encoder) appendData(data []byte) {
	for {
		n := bytes.IndexAny(data, "\r\n")
		if n < 0 {
			e.b = append(e.b, data...)
			return
		}
		e.b = append(e.b, data[:n]...)
		e.b = append(e.b, "\ndata: "...)
		if data[n] == '\r' && n+1 < len(data) && data[n+1] == '\n' {
			n++
		}
		data = data[n+1:]
	}
}

// endMessage ends the message, with the cursor as its id when withID.
func (e *encoder) endMessage(withID bool) {
	if withID {
		e.b = append(e.b, "\nid: "...)
		e.b = e.pos.appendID(e.b)
	}
	e.b = append(e.b, "\n\n"...)
}

// take returns what was appended since the last take and empties the
// buffer; the bytes are the caller's until the next append. A buffer that
// grew past maxKeptBuffer is let go, so an idle stream does not keep the
// memory of its largest batch.
func (e *encoder) take() []byte {
	b := e.b
	if cap(b) > maxKeptBuffer {
		e.b = nil
	} else {
		e.b = b[:0]
	}
	return b
}

// maxKeptBuffer is the largest message buffer a stream keeps between
// writes.
const maxKeptBuffer = 64 << 10
