package socketio

import (
	"encoding/json"
	"time"

	"github.com/syncgate/syncgate"
)

// Server event names.
const (
	evDatabaseChange = "database-change"
	evProjectEvent   = "project-event"
	evJoinedProject  = "joined-project"
	evLeftProject    = "left-project"
	evSubscribed     = "subscribed"
	evUnsubscribed   = "unsubscribed"
	evError          = "error"
)

// Client event names.
const (
	evJoinProject  = "join-project"
	evLeaveProject = "leave-project"
	evSubscribe    = "subscribe"
	evUnsubscribe  = "unsubscribe"
	evAuth         = "auth"
)

// databaseTypes are the event types a joined project receives as
// `database-change`; every other type arrives as `project-event`.
var databaseTypes = map[string]bool{
	"insert": true, "update": true, "delete": true,
	"create_table": true, "drop_table": true, "rename_table": true,
	"add_column": true, "alter_column": true, "drop_column": true,
	"create_constraint": true, "drop_constraint": true,
	"create_cron_job": true, "update_cron_job": true, "delete_cron_job": true, "toggle_cron_job": true,
	"import_dump": true,
}

// databaseChange is the `database-change` payload.
type databaseChange struct {
	Type       string          `json:"type"`
	ProjectID  string          `json:"projectId"`
	TableName  string          `json:"tableName"`
	Data       json.RawMessage `json:"data"`
	OldData    json.RawMessage `json:"oldData"`
	DocumentID string          `json:"documentId,omitempty"`
	Actor      string          `json:"actor,omitempty"`
	Timestamp  time.Time       `json:"timestamp"`
}

// projectEvent is the `project-event` payload.
type projectEvent struct {
	Type       string          `json:"type"`
	ProjectID  string          `json:"projectId"`
	Collection string          `json:"collection"`
	DocumentID string          `json:"documentId,omitempty"`
	Data       json.RawMessage `json:"data"`
	OldData    json.RawMessage `json:"oldData,omitempty"`
	Actor      string          `json:"actor,omitempty"`
	Timestamp  time.Time       `json:"timestamp"`
}

// documentEvent is the payload of the collection family, emitted under the
// event's own type (document:created, …, collection:cleared).
type documentEvent struct {
	Type        string          `json:"type"`
	Project     string          `json:"project"`
	Collection  string          `json:"collection"`
	DocumentID  string          `json:"documentId,omitempty"`
	Document    json.RawMessage `json:"document,omitempty"`
	OldDocument json.RawMessage `json:"oldDocument,omitempty"`
	Actor       string          `json:"actor,omitempty"`
	Timestamp   time.Time       `json:"timestamp"`
	Offset      string          `json:"offset"`
}

// encodeFor returns the start of the EVENT packet that delivers ev on a
// subscription of kind k: `42["name",{payload}` without the closing
// bracket, so the writer can append the connection's recovery state.
func encodeFor(k kind, ev *syncgate.Event) []byte {
	b := append([]byte(nil), eioMessage, sioEvent, '[')
	null := json.RawMessage("null")
	orNull := func(r json.RawMessage) json.RawMessage {
		if len(r) == 0 {
			return null
		}
		return r
	}
	if k == kindProject {
		if databaseTypes[ev.Type] {
			b = appendJSON(b, evDatabaseChange)
			b = append(b, ',')
			return appendJSON(b, databaseChange{Type: ev.Type, ProjectID: ev.Project, TableName: ev.Collection,
				Data: orNull(dataOf(ev)), OldData: orNull(ev.OldDocument), DocumentID: ev.DocumentID,
				Actor: ev.Actor, Timestamp: ev.Timestamp})
		}
		b = appendJSON(b, evProjectEvent)
		b = append(b, ',')
		return appendJSON(b, projectEvent{Type: ev.Type, ProjectID: ev.Project, Collection: ev.Collection,
			DocumentID: ev.DocumentID, Data: orNull(dataOf(ev)), OldData: ev.OldDocument, Actor: ev.Actor,
			Timestamp: ev.Timestamp})
	}
	b = appendJSON(b, ev.Type)
	b = append(b, ',')
	return appendJSON(b, documentEvent{Type: ev.Type, Project: ev.Project, Collection: ev.Collection,
		DocumentID: ev.DocumentID, Document: ev.Document, OldDocument: ev.OldDocument, Actor: ev.Actor,
		Timestamp: ev.Timestamp, Offset: ev.Offset})
}

// deleteTypes are the event types whose `data` carries the deleted row.
var deleteTypes = map[string]bool{"delete": true, "document:deleted": true}

// dataOf is the `data` of a joined project's payload: the event's document,
// except for a delete without one, where it is the deleted row —
// `oldDocument` (what change capture sends), else `{"id": documentId}` — so
// that a handler written for Socket.IO (`case 'delete': if (data?.id) …`)
// finds the row to remove. `oldData` stays `oldDocument` either way.
func dataOf(ev *syncgate.Event) json.RawMessage {
	if !deleteTypes[ev.Type] || len(ev.Document) != 0 {
		return ev.Document
	}
	if len(ev.OldDocument) != 0 {
		return ev.OldDocument
	}
	if ev.DocumentID != "" {
		return appendJSON(nil, struct {
			ID string `json:"id"`
		}{ev.DocumentID})
	}
	return nil
}

// roomOf is the Socket.IO room name apps expect for a joined project.
func roomOf(project string) string { return "project:" + project }
