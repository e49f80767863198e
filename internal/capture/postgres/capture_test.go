package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/capture/postgres"
	"github.com/syncgate/syncgate/internal/pgtest"
)

// TestEventKinds: each row change maps to its event, with documentId from
// the primary key, the documents, the schema as project and the commit
// time as timestamp.
func TestEventKinds(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE items (id int PRIMARY KEY, title text, n int)`)
	exec(t, sql, `CREATE TABLE pairs (a text, b int, v text, PRIMARY KEY (b, a))`)
	exec(t, sql, `CREATE TABLE full_rows (id int PRIMARY KEY, title text, n int)`)
	exec(t, sql, `ALTER TABLE full_rows REPLICA IDENTITY FULL`)
	r := startCapture(t, pg.URL(), nil)

	exec(t, sql, `INSERT INTO items VALUES (1, 'one', 10)`)
	exec(t, sql, `UPDATE items SET title = 'uno' WHERE id = 1`)
	exec(t, sql, `UPDATE items SET id = 2 WHERE id = 1`)
	exec(t, sql, `DELETE FROM items WHERE id = 2`)
	exec(t, sql, `INSERT INTO pairs VALUES ('x', 7, 'v1')`)
	exec(t, sql, `INSERT INTO full_rows VALUES (1, 'a', 1)`)
	exec(t, sql, `UPDATE full_rows SET n = 2 WHERE id = 1`)
	exec(t, sql, `DELETE FROM full_rows`)
	exec(t, sql, `TRUNCATE items`)

	evs := r.rec.wait(t, 9, 60*time.Second)
	want := []struct {
		typ, coll, id, doc, old string
	}{
		{"insert", "items", "1", `{"id":1,"title":"one","n":10}`, ``},
		{"update", "items", "1", `{"id":1,"title":"uno","n":10}`, `{"id":1}`},
		{"update", "items", "2", `{"id":2,"title":"uno","n":10}`, `{"id":1}`},
		{"delete", "items", "2", ``, `{"id":2}`},
		{"insert", "pairs", "7,x", `{"a":"x","b":7,"v":"v1"}`, ``},
		{"insert", "full_rows", "1", `{"id":1,"title":"a","n":1}`, ``},
		{"update", "full_rows", "1", `{"id":1,"title":"a","n":2}`, `{"id":1,"title":"a","n":1}`},
		{"delete", "full_rows", "1", ``, `{"id":1,"title":"a","n":2}`},
		{"collection:cleared", "items", "", ``, ``},
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Type != w.typ || ev.Project != "public" || ev.Collection != w.coll || ev.DocumentID != w.id ||
			string(ev.Document) != w.doc || string(ev.OldDocument) != w.old {
			t.Errorf("event %d = %s %s/%s id=%q doc=%s old=%s\nwant %s public/%s id=%q doc=%s old=%s", i,
				ev.Type, ev.Project, ev.Collection, ev.DocumentID, ev.Document, ev.OldDocument,
				w.typ, w.coll, w.id, w.doc, w.old)
		}
	}
	// The timestamp is the commit time PostgreSQL recorded.
	var commit time.Time
	if err := sql.QueryRow(context.Background(), `SELECT pg_xact_commit_timestamp(xmin) FROM pairs`).Scan(&commit); err != nil {
		t.Fatal(err)
	}
	if got := evs[4].Timestamp; !got.Equal(commit) {
		t.Errorf("insert into pairs: timestamp %s, want the commit time %s", got, commit)
	}
	if got := testutil.ToFloat64(r.m.Capture.Events.WithLabelValues("insert")); got != 3 {
		t.Errorf("syncgate_capture_events_total{kind=insert} = %v, want 3", got)
	}
}

// TestFixedProject: SYNCGATE_POSTGRES_PROJECT replaces the schema.
func TestFixedProject(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE SCHEMA shop; CREATE TABLE shop.orders (id bigint PRIMARY KEY)`)
	r := startCapture(t, pg.URL(), func(c *postgres.Config) { c.Project = "p1" })
	exec(t, sql, `INSERT INTO shop.orders VALUES (42)`)
	ev := r.rec.wait(t, 1, 60*time.Second)[0]
	if ev.Project != "p1" || ev.Collection != "orders" || ev.DocumentID != "42" {
		t.Fatalf("got %s/%s id %q, want p1/orders id 42", ev.Project, ev.Collection, ev.DocumentID)
	}
}

// TestTypeMapping: values are typed as JSON would show them.
func TestTypeMapping(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE v (
		id int PRIMARY KEY, b bool, i2 smallint, i8 bigint, f4 real, f8 double precision, fnan double precision,
		num numeric, num2 numeric(10,4), t text, vc varchar(10), j json, jb jsonb, ts timestamp, tstz timestamptz,
		tsinf timestamptz, d date, u uuid, by bytea, arr int[], nul text, quote text)`)
	r := startCapture(t, pg.URL(), nil)
	exec(t, sql, `SET TimeZone = 'Europe/Paris'`)
	exec(t, sql, `INSERT INTO v VALUES (1, true, -3, 9007199254740993, 1.5, 0.1, 'NaN',
		123456789012345678901234567890.123456789, 1.5, 'héllo', 'abc', '{"a": [1, 2]}', '{"b": {"c": null}}',
		'2026-11-22 10:00:00.123', '2026-11-22 11:00:00.123456+01', 'infinity', '2026-11-22',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff', '{1,2}', NULL, E'a"b\\c\n')`)
	ev := r.rec.wait(t, 1, 60*time.Second)[0]
	var got map[string]json.RawMessage
	if err := json.Unmarshal(ev.Document, &got); err != nil {
		t.Fatalf("document %s: %v", ev.Document, err)
	}
	want := map[string]string{
		"id": `1`, "b": `true`, "i2": `-3`, "i8": `9007199254740993`, "f4": `1.5`, "f8": `0.1`, "fnan": `"NaN"`,
		"num": `"123456789012345678901234567890.123456789"`, "num2": `"1.5000"`, "t": `"héllo"`, "vc": `"abc"`,
		"j": `{"a": [1, 2]}`, "jb": `{"b": {"c": null}}`, "ts": `"2026-11-22T10:00:00.123"`,
		"tstz": `"2026-11-22T10:00:00.123456Z"`, "tsinf": `"infinity"`, "d": `"2026-11-22"`,
		"u": `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "by": `"AP8="`, "arr": `"{1,2}"`, "nul": `null`,
		"quote": `"a\"b\\c\n"`,
	}
	for k, w := range want {
		if string(got[k]) != w {
			t.Errorf("%s = %s, want %s", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("document has %d fields, want %d: %s", len(got), len(want), ev.Document)
	}
}

// TestUnchangedToast: an update that leaves a TOASTed value alone leaves it
// out of the document (PostgreSQL does not send it) instead of sending
// garbage; with REPLICA IDENTITY FULL it is taken from the old row.
func TestUnchangedToast(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE docs (id int PRIMARY KEY, n int, body text)`)
	exec(t, sql, `ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`)
	exec(t, sql, `CREATE TABLE docs_full (id int PRIMARY KEY, n int, body text)`)
	exec(t, sql, `ALTER TABLE docs_full ALTER COLUMN body SET STORAGE EXTERNAL`)
	exec(t, sql, `ALTER TABLE docs_full REPLICA IDENTITY FULL`)
	r := startCapture(t, pg.URL(), nil)
	big := strings.Repeat("x", 10_000)
	exec(t, sql, `INSERT INTO docs VALUES (1, 1, $1)`, big)
	exec(t, sql, `UPDATE docs SET n = 2`)
	exec(t, sql, `INSERT INTO docs_full VALUES (1, 1, $1)`, big)
	exec(t, sql, `UPDATE docs_full SET n = 2`)
	evs := r.rec.wait(t, 4, 60*time.Second)
	if want := `{"id":1,"n":2}`; string(evs[1].Document) != want {
		t.Errorf("update leaving the TOASTed body: document %.200s, want %s", evs[1].Document, want)
	}
	var doc struct{ Body string }
	if err := json.Unmarshal(evs[3].Document, &doc); err != nil || doc.Body != big {
		t.Errorf("update of a REPLICA IDENTITY FULL table: body of %d bytes (%v), want the old row's %d", len(doc.Body), err, len(big))
	}
}

// TestRefusedNames: a table whose name breaks the collection rules is
// skipped, logged and counted; capture goes on.
func TestRefusedNames(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE "bad name" (id int PRIMARY KEY)`)
	exec(t, sql, `CREATE TABLE good (id int PRIMARY KEY)`)
	r := startCapture(t, pg.URL(), nil)
	exec(t, sql, `INSERT INTO "bad name" VALUES (1)`)
	exec(t, sql, `INSERT INTO good VALUES (1)`)
	evs := r.rec.wait(t, 1, 60*time.Second)
	if evs[0].Collection != "good" {
		t.Fatalf("first event is on %q, want good", evs[0].Collection)
	}
	if got := testutil.ToFloat64(r.m.Capture.Refused.WithLabelValues("name")); got != 1 {
		t.Fatalf("syncgate_capture_refused_total{reason=name} = %v, want 1", got)
	}
}

// TestEmitMessage: pg_logical_emit_message(true, 'syncgate', event) in a
// transaction publishes the event at its commit, in order with the rows;
// a rolled-back one is never published, an invalid one is refused.
func TestEmitMessage(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE notes (id int PRIMARY KEY)`)
	r := startCapture(t, pg.URL(), nil)
	exec(t, sql, `BEGIN; SELECT pg_logical_emit_message(true, 'syncgate', '{"type":"note:gone","project":"app","collection":"rolled","documentId":"x"}'); ROLLBACK`)
	exec(t, sql, `SELECT pg_logical_emit_message(true, 'syncgate', '{"type":"bad type!","project":"app","collection":"c"}')`)
	exec(t, sql, `BEGIN;
		INSERT INTO notes VALUES (1);
		SELECT pg_logical_emit_message(true, 'syncgate', '{"type":"note:made","project":"app","collection":"feed","documentId":"n1","document":{"by":"u1"},"actor":"u1"}');
		INSERT INTO notes VALUES (2);
		COMMIT`)
	evs := r.rec.wait(t, 3, 60*time.Second)
	got := []string{}
	for _, ev := range evs {
		got = append(got, ev.Type+" "+ev.Project+"/"+ev.Collection+" "+ev.DocumentID)
	}
	if want := "insert public/notes 1|note:made app/feed n1|insert public/notes 2"; strings.Join(got, "|") != want {
		t.Fatalf("events %q, want %q", strings.Join(got, "|"), want)
	}
	if evs[1].Actor != "u1" || string(evs[1].Document) != `{"by":"u1"}` || !evs[1].Timestamp.Equal(evs[0].Timestamp) {
		t.Fatalf("message event %+v: want actor u1, its document, the commit time %s", evs[1], evs[0].Timestamp)
	}
	if got := testutil.ToFloat64(r.m.Capture.Refused.WithLabelValues("message")); got != 1 {
		t.Fatalf("syncgate_capture_refused_total{reason=message} = %v, want 1", got)
	}
	_ = syncgate.TypeInsert
}

// TestDDL: schema changes arrive as events through the event trigger, in
// transaction order with the rows around them.
func TestDDL(t *testing.T) {
	pg := pgtest.Start(t)
	sql := db(t, pg.URL())
	exec(t, sql, `CREATE TABLE before_install (id int PRIMARY KEY)`)
	r := startCapture(t, pg.URL(), nil)
	exec(t, sql, `CREATE TABLE t1 (id int PRIMARY KEY, name text NOT NULL)`)
	exec(t, sql, `BEGIN; INSERT INTO t1 VALUES (1, 'a'); ALTER TABLE t1 ADD COLUMN age int; INSERT INTO t1 VALUES (2, 'b', 3); COMMIT`)
	exec(t, sql, `ALTER TABLE t1 ALTER COLUMN age TYPE bigint`)
	exec(t, sql, `ALTER TABLE t1 RENAME COLUMN name TO title`)
	exec(t, sql, `ALTER TABLE t1 ADD CONSTRAINT age_ok CHECK (age > 0)`)
	exec(t, sql, `ALTER TABLE t1 DROP CONSTRAINT age_ok`)
	exec(t, sql, `ALTER TABLE t1 DROP COLUMN age`)
	exec(t, sql, `ALTER TABLE t1 RENAME TO t2`)
	exec(t, sql, `ALTER TABLE before_install ADD COLUMN x text`)
	exec(t, sql, `DROP TABLE t2`)
	want := []string{
		`create_table t1 {"columns": [{"name": "id", "type": "integer"}, {"name": "name", "type": "text"}], "constraints": {"t1_pkey": "PRIMARY KEY (id)"}}`,
		`insert t1 {"id":1,"name":"a"}`,
		`add_column t1 {"name": "age", "type": "integer"}`,
		`insert t1 {"id":2,"name":"b","age":3}`,
		`alter_column t1 {"name": "age", "type": "bigint", "oldName": "age", "oldType": "integer"}`,
		`alter_column t1 {"name": "title", "type": "text", "oldName": "name", "oldType": "text"}`,
		`create_constraint t1 {"name": "age_ok", "definition": "CHECK ((age > 0))"}`,
		`drop_constraint t1 {"name": "age_ok", "definition": "CHECK ((age > 0))"}`,
		`drop_column t1 {"name": "age", "type": "bigint"}`,
		`rename_table t2 {"name": "t2", "oldName": "t1", "oldSchema": "public"}`,
		`add_column before_install {"name": "x", "type": "text"}`,
		`drop_table t2 `,
	}
	evs := r.rec.wait(t, len(want), 60*time.Second)
	for i, w := range want {
		ev := evs[i]
		if got := ev.Type + " " + ev.Collection + " " + string(ev.Document); got != w || ev.Project != "public" {
			t.Errorf("event %d: %s (project %s)\nwant     %s", i, got, ev.Project, w)
		}
	}
	if len(evs) > len(want) {
		t.Errorf("%d more events than expected: %s", len(evs)-len(want), dump(evs[len(want):]))
	}
}
