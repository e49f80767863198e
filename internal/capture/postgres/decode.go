package postgres

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/metrics"
)

// Logical message prefixes: an application's event, and the DDL event
// trigger's (whose project is the schema, mapped like a table's).
const (
	messagePrefix    = "syncgate"
	ddlMessagePrefix = "syncgate.ddl"
)

// internalSchema holds what the gateway installs (the DDL event trigger
// and its snapshot of tables); its changes are never published.
const internalSchema = "syncgate"

// txn is one committed transaction's events, in WAL order.
type txn struct {
	end        pglogrepl.LSN // the commit's end: the slot position after it
	commitTime time.Time
	events     []syncgate.Event
	kinds      []string // metrics kind of each event
}

// relation is what a Relation message said about a table, and how its
// changes map to events.
type relation struct {
	schema, name string
	cols         []pglogrepl.RelationMessageColumn
	key          []int // columns of the primary key (else of the replica identity), in key order
	identity     []bool
	project      string
	collection   string
	refused      bool // names break syncgate's rules; logged once, changes skipped
	internal     bool // the gateway's own schema
}

// keyLookup returns the primary key columns of a relation, by name in key
// order; nil when it has none.
type keyLookup func(relationID uint32) ([]string, error)

// decoder turns pgoutput messages into transactions. It is used by one
// goroutine.
type decoder struct {
	project string // fixed project, or "" for the schema
	lookup  keyLookup
	log     *slog.Logger
	m       *metrics.Metrics

	rels map[uint32]*relation
	tx   *txn // open transaction, nil between Commit and Begin
}

func newDecoder(project string, lookup keyLookup, log *slog.Logger, m *metrics.Metrics) *decoder {
	return &decoder{project: project, lookup: lookup, log: log, m: m, rels: make(map[uint32]*relation)}
}

// handle decodes one XLogData payload. It returns a transaction when the
// payload completed one: a Commit, or a non-transactional logical message
// (a transaction of its own). Malformed data is an error: the stream
// cannot be followed past it.
func (d *decoder) handle(data []byte) (*txn, error) {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("decoding pgoutput: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		d.relation(m)
	case *pglogrepl.BeginMessage:
		d.tx = &txn{commitTime: m.CommitTime.UTC()}
	case *pglogrepl.CommitMessage:
		tx := d.tx
		if tx == nil {
			return nil, fmt.Errorf("commit at %s without a begin", m.CommitLSN)
		}
		d.tx = nil
		tx.end = m.TransactionEndLSN
		tx.commitTime = m.CommitTime.UTC()
		return tx, nil
	case *pglogrepl.InsertMessage:
		return nil, d.row(syncgate.TypeInsert, metrics.CaptureInsert, m.RelationID, nil, 0, m.Tuple)
	case *pglogrepl.UpdateMessage:
		return nil, d.row(syncgate.TypeUpdate, metrics.CaptureUpdate, m.RelationID, m.OldTuple, m.OldTupleType, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		return nil, d.row(syncgate.TypeDelete, metrics.CaptureDelete, m.RelationID, m.OldTuple, m.OldTupleType, nil)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := d.rel(id)
			if err != nil {
				return nil, err
			}
			if d.skip(rel) {
				continue
			}
			d.add(syncgate.Event{Type: syncgate.TypeCollectionCleared, Project: rel.project, Collection: rel.collection}, metrics.CaptureCleared)
		}
	case *pglogrepl.LogicalDecodingMessage:
		return d.message(m)
	}
	return nil, nil
}

func (d *decoder) relation(m *pglogrepl.RelationMessage) {
	rel := &relation{schema: m.Namespace, name: m.RelationName, internal: m.Namespace == internalSchema}
	for _, c := range m.Columns {
		rel.cols = append(rel.cols, *c)
		rel.identity = append(rel.identity, c.Flags&1 != 0)
	}
	rel.project = m.Namespace
	if d.project != "" {
		rel.project = d.project
	}
	rel.collection = m.RelationName
	if !rel.internal {
		if err := syncgate.ValidateProject(rel.project); err != nil {
			rel.refused = true
			d.log.Warn("table not captured: its schema is not a valid project name (set SYNCGATE_POSTGRES_PROJECT or rename it)",
				"schema", m.Namespace, "table", m.RelationName)
		} else if err := syncgate.ValidateCollection(rel.collection); err != nil {
			rel.refused = true
			d.log.Warn("table not captured: its name is not a valid collection name", "schema", m.Namespace, "table", m.RelationName)
		}
	}
	names, err := d.lookup(m.RelationID)
	if err != nil {
		d.log.Warn("looking up the primary key failed; using the replica identity", "schema", m.Namespace, "table", m.RelationName, "err", err)
	}
	for _, n := range names {
		for i, c := range rel.cols {
			if c.Name == n {
				rel.key = append(rel.key, i)
			}
		}
	}
	if len(rel.key) == 0 && m.ReplicaIdentity != 'f' {
		for i, id := range rel.identity {
			if id {
				rel.key = append(rel.key, i)
			}
		}
	}
	d.rels[m.RelationID] = rel
}

func (d *decoder) rel(id uint32) (*relation, error) {
	rel := d.rels[id]
	if rel == nil {
		return nil, fmt.Errorf("change to relation %d before its Relation message", id)
	}
	return rel, nil
}

// skip reports whether rel's changes are not published, counting refusals.
func (d *decoder) skip(rel *relation) bool {
	if rel.internal {
		return true
	}
	if rel.refused {
		d.m.CaptureRefused(metrics.RefusedName)
		return true
	}
	return false
}

func (d *decoder) add(ev syncgate.Event, kind string) {
	if d.tx == nil {
		// Row changes always come inside Begin/Commit; tolerate a server
		// that does otherwise by opening one (it ends at the next commit).
		d.tx = &txn{}
	}
	d.tx.events = append(d.tx.events, ev)
	d.tx.kinds = append(d.tx.kinds, kind)
}

// row maps an Insert, Update or Delete.
func (d *decoder) row(typ, kind string, relID uint32, old *pglogrepl.TupleData, oldType uint8, new *pglogrepl.TupleData) error {
	rel, err := d.rel(relID)
	if err != nil {
		return err
	}
	if d.skip(rel) {
		return nil
	}
	for _, t := range []*pglogrepl.TupleData{old, new} {
		if t != nil && len(t.Columns) != len(rel.cols) {
			return fmt.Errorf("%s.%s: tuple of %d columns, relation has %d", rel.schema, rel.name, len(t.Columns), len(rel.cols))
		}
	}
	keyOnly := oldType == pglogrepl.UpdateMessageTupleTypeKey // same byte for deletes
	ev := syncgate.Event{Type: typ, Project: rel.project, Collection: rel.collection}
	if new != nil {
		ev.Document = rel.document(new, old, false)
		ev.DocumentID = rel.id(new, old)
	}
	switch {
	case old != nil:
		ev.OldDocument = rel.document(old, nil, keyOnly)
		if ev.DocumentID == "" {
			ev.DocumentID = rel.id(old, nil)
		}
	case typ == syncgate.TypeUpdate:
		// No old tuple: the key did not change and the table has no
		// REPLICA IDENTITY FULL; the old row's key is the new row's.
		ev.OldDocument = rel.keyDocument(new)
	}
	if b, err := ev.Encode(); err != nil || len(b) > syncgate.MaxEventSize {
		d.m.CaptureRefused(metrics.RefusedTooLarge)
		d.log.Warn("row change over the event size limit: published without document and oldDocument",
			"schema", rel.schema, "table", rel.name, "documentId", ev.DocumentID)
		ev.Document, ev.OldDocument = nil, nil
	}
	d.add(ev, kind)
	return nil
}

// document returns a tuple as a JSON object. Unchanged TOASTed values
// ('u', not sent) are taken from fill (the old tuple) when it has them,
// else left out. With keyOnly only the identity columns are written (the
// others of a key tuple are nulls that say nothing).
func (rel *relation) document(t, fill *pglogrepl.TupleData, keyOnly bool) json.RawMessage {
	b := make([]byte, 0, 64)
	b = append(b, '{')
	n := 0
	for i, c := range t.Columns {
		if keyOnly && !rel.identity[i] {
			continue
		}
		if c.DataType == pglogrepl.TupleDataTypeToast {
			if fill == nil || fill.Columns[i].DataType == pglogrepl.TupleDataTypeToast {
				continue
			}
			c = fill.Columns[i]
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendString(b, rel.cols[i].Name)
		b = append(b, ':')
		b = rel.appendColumn(b, i, c)
	}
	return append(b, '}')
}

func (rel *relation) appendColumn(b []byte, i int, c *pglogrepl.TupleDataColumn) []byte {
	switch c.DataType {
	case pglogrepl.TupleDataTypeText:
		return appendValue(b, rel.cols[i].DataType, c.Data)
	case pglogrepl.TupleDataTypeBinary:
		return appendString(b, string(c.Data))
	}
	return append(b, "null"...)
}

// keyDocument returns the key columns of t as an object.
func (rel *relation) keyDocument(t *pglogrepl.TupleData) json.RawMessage {
	if len(rel.key) == 0 {
		return nil
	}
	b := []byte{'{'}
	for j, i := range rel.key {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendString(b, rel.cols[i].Name)
		b = append(b, ':')
		b = rel.appendColumn(b, i, t.Columns[i])
	}
	return append(b, '}')
}

// id returns the key columns' text values joined with ",", taking a value
// not sent in t from fill; "" when the table has no key.
func (rel *relation) id(t, fill *pglogrepl.TupleData) string {
	if len(rel.key) == 0 {
		return ""
	}
	parts := make([]string, 0, len(rel.key))
	for _, i := range rel.key {
		c := t.Columns[i]
		if c.DataType == pglogrepl.TupleDataTypeToast && fill != nil {
			c = fill.Columns[i]
		}
		if c.DataType != pglogrepl.TupleDataTypeText && c.DataType != pglogrepl.TupleDataTypeBinary {
			return ""
		}
		parts = append(parts, string(c.Data))
	}
	id := strings.Join(parts, ",")
	if len(id) > 256 {
		return "" // over the event's documentId limit; the document still has the key
	}
	return id
}

// message maps a logical message: an application's event (prefix
// syncgate) or the DDL trigger's (prefix syncgate.ddl).
func (d *decoder) message(m *pglogrepl.LogicalDecodingMessage) (*txn, error) {
	if m.Prefix != messagePrefix && m.Prefix != ddlMessagePrefix {
		return nil, nil
	}
	ev, err := syncgate.DecodeEvent(m.Content)
	kind := metrics.CaptureMessage
	if m.Prefix == ddlMessagePrefix {
		kind = metrics.CaptureDDL
		if ev.Project == internalSchema {
			return nil, nil
		}
		if d.project != "" {
			ev.Project = d.project
		}
	}
	if err == nil {
		err = ev.Validate()
	}
	if err == nil {
		_, err = ev.Encode()
	}
	if err != nil {
		if m.Prefix == ddlMessagePrefix {
			d.m.CaptureRefused(metrics.RefusedName) // the trigger writes valid events but for the names
		} else {
			d.m.CaptureRefused(metrics.RefusedMessage)
		}
		// The error names fields and values, never the document body.
		d.log.Warn("logical message is not a valid event; skipped", "prefix", m.Prefix, "lsn", m.LSN.String(), "err", err)
		return nil, nil
	}
	if !m.Transactional {
		return &txn{end: m.LSN, commitTime: time.Now().UTC(), events: []syncgate.Event{ev}, kinds: []string{kind}}, nil
	}
	d.add(ev, kind)
	return nil, nil
}
