package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/syncgate/syncgate"
)

// An Option adjusts an event built by a helper.
type Option func(*syncgate.Event)

// WithActor names the user or service that made the change.
func WithActor(actor string) Option { return func(e *syncgate.Event) { e.Actor = actor } }

// WithAudience limits delivery to connections of the given users or roles.
func WithAudience(users, roles []string) Option {
	return func(e *syncgate.Event) { e.Audience = &syncgate.Audience{Users: users, Roles: roles} }
}

// WithTimestamp sets when the change happened (default: when the helper is
// called).
func WithTimestamp(t time.Time) Option { return func(e *syncgate.Event) { e.Timestamp = t } }

// NewEvent builds an event of type typ. doc and old are marshalled with
// encoding/json (a json.RawMessage or []byte holding JSON is used as is);
// nil leaves the field out. Use it to build events for Publish or a Batcher.
func NewEvent(typ, project, collection, id string, doc, old any, opts ...Option) (syncgate.Event, error) {
	ev := syncgate.Event{Type: typ, Project: project, Collection: collection, DocumentID: id}
	var err error
	if ev.Document, err = rawJSON(doc); err != nil {
		return syncgate.Event{}, fmt.Errorf("%w: document: %v", syncgate.ErrInvalidEvent, err)
	}
	if ev.OldDocument, err = rawJSON(old); err != nil {
		return syncgate.Event{}, fmt.Errorf("%w: oldDocument: %v", syncgate.ErrInvalidEvent, err)
	}
	for _, o := range opts {
		o(&ev)
	}
	return ev, nil
}

func rawJSON(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return v, nil
	case []byte:
		return json.RawMessage(v), nil
	}
	return json.Marshal(v)
}

// publishOne builds one event and publishes it, returning its offset.
func (p *Publisher) publishOne(ctx context.Context, typ, project, collection, id string, doc, old any, opts []Option) (string, error) {
	ev, err := NewEvent(typ, project, collection, id, doc, old, opts...)
	if err != nil {
		return "", invalid(err, 0, false)
	}
	offs, err := p.Publish(ctx, ev)
	if err != nil {
		return "", err
	}
	return offs[0], nil
}

// DocumentCreated publishes "document:created" for document id with its
// new state doc, made by actor (may be empty). It returns the event's offset.
func (p *Publisher) DocumentCreated(ctx context.Context, project, collection, id, actor string, doc any, opts ...Option) (string, error) {
	return p.publishOne(ctx, syncgate.TypeDocumentCreated, project, collection, id, doc, nil, withActor(actor, opts))
}

// DocumentUpdated publishes "document:updated" with the new state doc and,
// when not nil, the previous state old, so clients can diff or roll back.
func (p *Publisher) DocumentUpdated(ctx context.Context, project, collection, id, actor string, doc, old any, opts ...Option) (string, error) {
	return p.publishOne(ctx, syncgate.TypeDocumentUpdated, project, collection, id, doc, old, withActor(actor, opts))
}

// DocumentDeleted publishes "document:deleted" for document id.
func (p *Publisher) DocumentDeleted(ctx context.Context, project, collection, id, actor string, opts ...Option) (string, error) {
	return p.publishOne(ctx, syncgate.TypeDocumentDeleted, project, collection, id, nil, nil, withActor(actor, opts))
}

// CollectionCleared publishes "collection:cleared": every document of the
// collection is gone, clients drop their copy.
func (p *Publisher) CollectionCleared(ctx context.Context, project, collection, actor string, opts ...Option) (string, error) {
	return p.publishOne(ctx, syncgate.TypeCollectionCleared, project, collection, "", nil, nil, withActor(actor, opts))
}

func withActor(actor string, opts []Option) []Option {
	if actor == "" {
		return opts
	}
	return append([]Option{WithActor(actor)}, opts...)
}

// Insert publishes "insert": a row with primary key id was inserted into
// table. Database change streams (triggers, CDC) map onto these helpers.
func (p *Publisher) Insert(ctx context.Context, project, table, id string, row any, opts ...Option) (string, error) {
	return p.publishOne(ctx, syncgate.TypeInsert, project, table, id, row, nil, opts)
}

// Update publishes "update" with the new row and the old row (nil when the
// source does not provide it).
func (p *Publisher) Update(ctx context.Context, project, table, id string, row, oldRow any, opts ...Option) (string, error) {
	return p.publishOne(ctx, syncgate.TypeUpdate, project, table, id, row, oldRow, opts)
}

// Delete publishes "delete" with the deleted row as oldDocument (nil when
// unknown).
func (p *Publisher) Delete(ctx context.Context, project, table, id string, oldRow any, opts ...Option) (string, error) {
	return p.publishOne(ctx, syncgate.TypeDelete, project, table, id, nil, oldRow, opts)
}

// SchemaChanged publishes a schema change of table: change is one of
// syncgate.TypeCreateTable, TypeDropTable, TypeRenameTable, TypeAddColumn,
// TypeAlterColumn, TypeDropColumn, TypeCreateConstraint, TypeDropConstraint
// or TypeImportDump. detail describes it (e.g. the column definition, or
// {"from":"old","to":"new"} for a rename) and old the previous definition;
// either may be nil.
func (p *Publisher) SchemaChanged(ctx context.Context, project, table, change string, detail, old any, opts ...Option) (string, error) {
	if !IsSchemaChange(change) {
		err := fmt.Errorf("%w: type %q is not a schema change", syncgate.ErrInvalidEvent, change)
		return "", invalid(err, 0, false)
	}
	return p.publishOne(ctx, change, project, table, "", detail, old, opts)
}

// IsSchemaChange reports whether typ is one of the schema-change types.
func IsSchemaChange(typ string) bool {
	switch typ {
	case syncgate.TypeCreateTable, syncgate.TypeDropTable, syncgate.TypeRenameTable,
		syncgate.TypeAddColumn, syncgate.TypeAlterColumn, syncgate.TypeDropColumn,
		syncgate.TypeCreateConstraint, syncgate.TypeDropConstraint, syncgate.TypeImportDump:
		return true
	}
	return false
}
