package syncgate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
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
	for _, doc := range []struct {
		name string
		raw  json.RawMessage
	}{{"document", e.Document}, {"oldDocument", e.OldDocument}} {
		if len(doc.raw) > 0 && !json.Valid(doc.raw) {
			return fmt.Errorf("%w: %s is not valid JSON", ErrInvalidEvent, doc.name)
		}
	}
	if e.Audience != nil {
		if len(e.Audience.Users)+len(e.Audience.Roles) == 0 {
			return fmt.Errorf("%w: audience names no users and no roles (omit it to reach everyone)", ErrInvalidEvent)
		}
		if n := len(e.Audience.Users) + len(e.Audience.Roles); n > 1000 {
			return fmt.Errorf("%w: audience names %d users and roles, at most 1000", ErrInvalidEvent, n)
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

// DecodeEvent parses one event strictly: unknown fields (compared
// case-sensitively, so "documentID" is refused) and trailing data are errors,
// so a misspelled field is caught at the publisher. It does not validate;
// call Validate.
func DecodeEvent(data []byte) (Event, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fields); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("%w: trailing data after the event object", ErrInvalidEvent)
	}
	if fields == nil {
		return Event{}, fmt.Errorf("%w: the event is null, want an object", ErrInvalidEvent)
	}
	for name := range fields {
		if !eventFields[name] {
			return Event{}, fmt.Errorf("%w: unknown field %q", ErrInvalidEvent, clip(name))
		}
	}
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return e, nil
}
