package syncgate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// MaxEventSize is the largest encoded size of one event, in bytes.
const MaxEventSize = 256 << 10

// AllCollections is the collection name that, in a subscription, means every
// collection of the project. It is never a valid collection of an event.
const AllCollections = "*"

// Well-known event types. Any type matching [a-z_:.]{1,64} is accepted.
const (
	TypeDocumentCreated   = "document:created"
	TypeDocumentUpdated   = "document:updated"
	TypeDocumentDeleted   = "document:deleted"
	TypeCollectionCleared = "collection:cleared"

	TypeInsert           = "insert"
	TypeUpdate           = "update"
	TypeDelete           = "delete"
	TypeCreateTable      = "create_table"
	TypeDropTable        = "drop_table"
	TypeRenameTable      = "rename_table"
	TypeAddColumn        = "add_column"
	TypeAlterColumn      = "alter_column"
	TypeDropColumn       = "drop_column"
	TypeCreateConstraint = "create_constraint"
	TypeDropConstraint   = "drop_constraint"
	TypeImportDump       = "import_dump"
)

// Event is one change in a project's collection. Publishers fill everything
// but Offset, which the backplane assigns.
type Event struct {
	// Type says what happened, e.g. "document:updated" or "insert".
	Type string `json:"type"`
	// Project is the tenant the event belongs to.
	Project string `json:"project"`
	// Collection is the table or collection inside the project.
	Collection string `json:"collection"`
	// DocumentID names the changed document or row, when there is one.
	DocumentID string `json:"documentId,omitempty"`
	// Document is the new state, any JSON value.
	Document json.RawMessage `json:"document,omitempty"`
	// OldDocument is the previous state, any JSON value.
	OldDocument json.RawMessage `json:"oldDocument,omitempty"`
	// Actor is the user or service that made the change.
	Actor string `json:"actor,omitempty"`
	// Audience, when set, limits delivery to the listed users and roles.
	Audience *Audience `json:"audience,omitempty"`
	// Timestamp is when the change happened; the server sets it at publish
	// time when the publisher leaves it zero.
	Timestamp time.Time `json:"timestamp,omitzero"`
	// Offset is the event's position in the stream it is delivered on. It is
	// opaque: clients store it and hand it back as `since`.
	Offset string `json:"offset,omitempty"`
}

// Audience limits an event to connections whose token names one of Users as
// its subject or holds one of Roles.
type Audience struct {
	Users []string `json:"users,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// Allows reports whether a reader with the given user id and roles may receive
// an event with this audience. A nil audience allows everyone.
func (a *Audience) Allows(user string, roles []string) bool {
	if a == nil {
		return true
	}
	for _, u := range a.Users {
		if u == user {
			return true
		}
	}
	for _, want := range a.Roles {
		for _, have := range roles {
			if want == have {
				return true
			}
		}
	}
	return false
}

// ErrInvalidEvent is wrapped by every validation failure of an event.
var ErrInvalidEvent = errors.New("invalid event")

// Validate checks an event as a publisher sent it. The error names the field
// and the bad value and wraps ErrInvalidEvent.
func (e *Event) Validate() error {
	if err := ValidateType(e.Type); err != nil {
		return err
	}
	if err := ValidateProject(e.Project); err != nil {
		return err
	}
	if err := ValidateCollection(e.Collection); err != nil {
		return err
	}
	if len(e.DocumentID) > 256 {
		return fmt.Errorf("%w: documentId is %d bytes, at most 256", ErrInvalidEvent, len(e.DocumentID))
	}
	if len(e.Actor) > 256 {
		return fmt.Errorf("%w: actor is %d bytes, at most 256", ErrInvalidEvent, len(e.Actor))
	}
	// encoding/json would replace invalid UTF-8 in a string with U+FFFD
	// and pass it through a raw document as is: refuse both.
	for _, f := range []struct{ name, v string }{{"documentId", e.DocumentID}, {"actor", e.Actor}} {
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, f.name)
		}
	}
	for _, doc := range []struct {
		name string
		raw  json.RawMessage
	}{{"document", e.Document}, {"oldDocument", e.OldDocument}} {
		if len(doc.raw) > 0 && !json.Valid(doc.raw) {
			return fmt.Errorf("%w: %s is not valid JSON", ErrInvalidEvent, doc.name)
		}
		if !utf8.Valid(doc.raw) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, doc.name)
		}
	}
	if e.Audience != nil {
		if len(e.Audience.Users)+len(e.Audience.Roles) == 0 {
			return fmt.Errorf("%w: audience names no users and no roles (omit it to reach everyone)", ErrInvalidEvent)
		}
		if n := len(e.Audience.Users) + len(e.Audience.Roles); n > 1000 {
			return fmt.Errorf("%w: audience names %d users and roles, at most 1000", ErrInvalidEvent, n)
		}
		for _, list := range [][]string{e.Audience.Users, e.Audience.Roles} {
			for _, v := range list {
				if !utf8.ValidString(v) {
					return fmt.Errorf("%w: audience names %q, which is not valid UTF-8", ErrInvalidEvent, v)
				}
			}
		}
	}
	if e.Offset != "" {
		return fmt.Errorf("%w: offset %q is set by the server, leave it empty", ErrInvalidEvent, e.Offset)
	}
	return nil
}

// Encode returns the event's JSON encoding, checking the size limit.
func (e *Event) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: encoded size %d bytes exceeds %d", ErrInvalidEvent, len(b), MaxEventSize)
	}
	return b, nil
}

// eventFields are the JSON names of Event, matched exactly: encoding/json
// alone matches names case-insensitively, which would let "documentID" pass.
var eventFields = map[string]bool{
	"type": true, "project": true, "collection": true, "documentId": true, "document": true,
	"oldDocument": true, "actor": true, "audience": true, "timestamp": true, "offset": true,
}

// audienceFields are the JSON names of Audience, matched exactly.
var audienceFields = map[string]bool{"users": true, "roles": true}

// stringFields are the event fields that hold JSON strings (or arrays of
// them), checked for text that encoding/json would silently replace.
var stringFields = map[string]bool{
	"type": true, "project": true, "collection": true, "documentId": true,
	"actor": true, "audience": true, "timestamp": true, "offset": true,
}

// DecodeEvent parses one event strictly, so that what a publisher meant is
// what is published: unknown fields (compared case-sensitively, so
// "documentID" is refused, in the event and in its audience), duplicate
// fields (which encoding/json would resolve silently, the last one
// winning), invalid UTF-8 anywhere, unpaired UTF-16 surrogate escapes in a
// string field (both of which it would replace with U+FFFD) and trailing
// data are errors naming the field. It does not validate; call Validate.
func DecodeEvent(data []byte) (Event, error) {
	fields, err := decodeObject(data, "the event", eventFields)
	if err != nil {
		return Event{}, err
	}
	for name, raw := range fields {
		if !utf8.Valid(raw) {
			return Event{}, fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, name)
		}
		if stringFields[name] {
			if err := checkEscapes(raw); err != nil {
				return Event{}, fmt.Errorf("%w: %s: %v", ErrInvalidEvent, name, err)
			}
		}
	}
	if raw, ok := fields["audience"]; ok && !bytes.Equal(raw, []byte("null")) {
		if _, err := decodeObject(raw, "audience", audienceFields); err != nil {
			return Event{}, err
		}
	}
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return e, nil
}

// decodeObject reads data as one JSON object whose field names are all in
// known, each at most once, and returns the raw value of each field.
func decodeObject(data []byte, what string, known map[string]bool) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidEvent, what, err)
	}
	if tok != json.Delim('{') {
		if tok == nil {
			return nil, fmt.Errorf("%w: %s is null, want an object", ErrInvalidEvent, what)
		}
		return nil, fmt.Errorf("%w: %s is not a JSON object", ErrInvalidEvent, what)
	}
	fields := make(map[string]json.RawMessage, len(known))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidEvent, what, err)
		}
		name, _ := tok.(string)
		if !known[name] {
			if what == "the event" {
				return nil, fmt.Errorf("%w: unknown field %q", ErrInvalidEvent, clip(name))
			}
			return nil, fmt.Errorf("%w: %s has unknown field %q", ErrInvalidEvent, what, clip(name))
		}
		if _, dup := fields[name]; dup {
			return nil, fmt.Errorf("%w: duplicate field %q in %s", ErrInvalidEvent, name, what)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %s: field %q: %v", ErrInvalidEvent, what, name, err)
		}
		fields[name] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidEvent, what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after %s object", ErrInvalidEvent, what)
	}
	return fields, nil
}

// checkEscapes refuses a \u escape of a UTF-16 surrogate that is not one
// half of a pair, which encoding/json would decode as U+FFFD.
func checkEscapes(raw []byte) error {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 >= len(raw) {
			break
		}
		if raw[i+1] != 'u' {
			i++ // an escaped character, possibly a backslash
			continue
		}
		r := hex4(raw[i+2:])
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if len(raw) < i+12 || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return errors.New("an unpaired UTF-16 surrogate escape")
			}
			if lo := hex4(raw[i+8:]); lo < 0xDC00 || lo > 0xDFFF {
				return errors.New("an unpaired UTF-16 surrogate escape")
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return errors.New("an unpaired UTF-16 surrogate escape")
		default:
			i += 5
		}
	}
	return nil
}

// hex4 reads the four hex digits of a \u escape (which the JSON decoder has
// already checked), or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
