package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Engine.IO v4 packet types: the first byte of every text frame.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioUpgrade = '5'
	eioNoop    = '6'
)

// Socket.IO v5 packet types: the first byte of an Engine.IO message.
const (
	sioConnect      = '0'
	sioDisconnect   = '1'
	sioEvent        = '2'
	sioAck          = '3'
	sioConnectError = '4'
	sioBinaryEvent  = '5'
	sioBinaryAck    = '6'
)

// errBadPacket is wrapped by every decoding failure.
var errBadPacket = errors.New("bad packet")

// maxAttachments bounds the attachment count of a binary packet header; the
// server rejects binary packets but must skip their attachments.
const maxAttachments = 64

// packet is one decoded client Socket.IO packet.
type packet struct {
	Type byte
	// Attachments is the number of binary frames that follow a binary packet.
	Attachments int
	// Namespace is "/" unless the packet names another.
	Namespace string
	// ID is the acknowledgement id, or -1 when the sender wants none.
	ID int64
	// Data is the JSON payload, nil when absent.
	Data json.RawMessage
}

// decodePacket parses the Socket.IO packet inside an Engine.IO message (the
// frame without its leading '4'):
//
//	<type>[<attachments>-][/<namespace>,][<ack id>][<JSON payload>]
func decodePacket(b []byte) (packet, error) {
	p := packet{Namespace: "/", ID: -1}
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty message", errBadPacket)
	}
	p.Type = b[0]
	if p.Type < sioConnect || p.Type > sioBinaryAck {
		return p, fmt.Errorf("%w: unknown packet type %q", errBadPacket, p.Type)
	}
	i := 1
	if p.Type == sioBinaryEvent || p.Type == sioBinaryAck {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i || j-i > 3 || j >= len(b) || b[j] != '-' {
			return p, fmt.Errorf("%w: binary packet without an attachment count", errBadPacket)
		}
		n, _ := strconv.Atoi(string(b[i:j]))
		if n > maxAttachments {
			return p, fmt.Errorf("%w: %d attachments, at most %d", errBadPacket, n, maxAttachments)
		}
		p.Attachments = n
		i = j + 1
	}
	if i < len(b) && b[i] == '/' {
		j := bytes.IndexByte(b[i:], ',')
		if j < 0 {
			j = len(b) - i
		}
		if j > 128 {
			return p, fmt.Errorf("%w: namespace longer than 128 bytes", errBadPacket)
		}
		p.Namespace = string(b[i : i+j])
		i += j
		if i < len(b) {
			i++ // the comma
		}
	}
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j > i {
		if j-i > 15 {
			return p, fmt.Errorf("%w: ack id longer than 15 digits", errBadPacket)
		}
		p.ID, _ = strconv.ParseInt(string(b[i:j]), 10, 64)
		i = j
	}
	if i < len(b) {
		p.Data = b[i:]
		if !json.Valid(p.Data) {
			return p, fmt.Errorf("%w: payload is not JSON", errBadPacket)
		}
	}
	switch p.Type {
	case sioConnect:
		if p.Data != nil && p.Data[0] != '{' {
			return p, fmt.Errorf("%w: CONNECT payload must be an object", errBadPacket)
		}
	case sioEvent, sioBinaryEvent, sioAck, sioBinaryAck:
		if p.Data == nil || p.Data[0] != '[' {
			return p, fmt.Errorf("%w: payload must be an array", errBadPacket)
		}
	case sioDisconnect:
	default:
		return p, fmt.Errorf("%w: clients do not send packet type %q", errBadPacket, p.Type)
	}
	return p, nil
}

// eventArgs splits an EVENT payload into the event name and its arguments.
func eventArgs(data json.RawMessage) (string, []json.RawMessage, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(data, &args); err != nil || len(args) == 0 {
		return "", nil, fmt.Errorf("%w: an event is an array starting with its name", errBadPacket)
	}
	var name string
	if err := json.Unmarshal(args[0], &name); err != nil {
		return "", nil, fmt.Errorf("%w: the event name must be a string", errBadPacket)
	}
	if name == "" || len(name) > 128 {
		return "", nil, fmt.Errorf("%w: the event name must be 1 to 128 bytes", errBadPacket)
	}
	return name, args[1:], nil
}

// Server packets. Each is an Engine.IO message frame for namespace "/".

// encodeEvent returns `42["name",arg...]`.
func encodeEvent(name string, args ...any) []byte {
	b := append([]byte(nil), eioMessage, sioEvent)
	return append(appendArray(b, name, args), ']')
}

// encodeEventOpen returns `42["name",arg...` without the closing bracket:
// the writer appends the recovery state as the last argument.
func encodeEventOpen(name string, args ...any) []byte {
	b := append([]byte(nil), eioMessage, sioEvent)
	return appendArray(b, name, args)
}

// encodeAck returns `43<id>[arg...]`.
func encodeAck(id int64, args ...any) []byte {
	b := append([]byte(nil), eioMessage, sioAck)
	b = strconv.AppendInt(b, id, 10)
	return append(appendArray(b, "", args), ']')
}

// appendArray appends `[name,arg...` (unclosed).
func appendArray(b []byte, name string, args []any) []byte {
	b = append(b, '[')
	if name != "" {
		b = appendJSON(b, name)
	}
	for i, a := range args {
		if i > 0 || name != "" {
			b = append(b, ',')
		}
		b = appendJSON(b, a)
	}
	return b
}

// encodeConnect returns `40{"sid":…,"pid":…}`.
func encodeConnect(sid, pid string) []byte {
	b := append([]byte(nil), eioMessage, sioConnect)
	return appendJSON(b, struct {
		SID string `json:"sid"`
		PID string `json:"pid"`
	}{sid, pid})
}

// encodeConnectError returns `44[/nsp,]{"message":…,"data":{"code":…}}`;
// socket.io-client emits it as connect_error with err.data set.
func encodeConnectError(nsp, code, msg string) []byte {
	b := append([]byte(nil), eioMessage, sioConnectError)
	if nsp != "/" {
		b = append(b, nsp...)
		b = append(b, ',')
	}
	return appendJSON(b, struct {
		Message string    `json:"message"`
		Data    errorBody `json:"data"`
	}{msg, errorBody{Code: code, Message: msg}})
}

// encodeOpen returns the Engine.IO handshake.
func encodeOpen(sid string, pingInterval, pingTimeout, maxPayload int64) []byte {
	b := []byte{eioOpen}
	return appendJSON(b, struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int64    `json:"maxPayload"`
	}{sid, []string{}, pingInterval, pingTimeout, maxPayload})
}

func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("socketio: encoding %T: %v", v, err))
	}
	return append(b, j...)
}

// errorBody is the payload of `error` events and failed acks.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Event   string `json:"event,omitempty"`
}
