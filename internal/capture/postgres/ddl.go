package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ddlSQL installs schema-change capture: an event trigger at the end of
// CREATE TABLE and ALTER TABLE compares the table with its snapshot in
// syncgate.tables (columns by attribute number, constraints by name) and
// emits one event per difference; one at sql_drop emits drop_table. The
// events go out as transactional logical messages with the prefix
// syncgate.ddl, so they reach the stream in transaction order with the rows
// around them. Project is the schema (the capture replaces it when a
// project is fixed), collection the table, document what changed.
//
// Idempotent: functions are replaced, triggers re-created, the snapshot
// refreshed from the catalog (changes made while no trigger was installed
// are not reported). One transaction, serialized by an advisory lock.
const ddlSQL = `
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('syncgate.ddl.install'));
CREATE SCHEMA IF NOT EXISTS syncgate;
CREATE TABLE IF NOT EXISTS syncgate.tables (
	relid oid PRIMARY KEY,
	schema_name text NOT NULL,
	table_name text NOT NULL,
	columns jsonb NOT NULL,
	constraints jsonb NOT NULL
);

-- The state of a table: columns {"<attnum>": {"name", "type"}}, constraints
-- {"<name>": "<definition>"}.
CREATE OR REPLACE FUNCTION syncgate.table_state(rel oid,
	OUT schema_name text, OUT table_name text, OUT columns jsonb, OUT constraints jsonb)
LANGUAGE sql STABLE AS $fn$
	SELECT n.nspname::text, c.relname::text,
		coalesce((SELECT jsonb_object_agg(a.attnum::text, jsonb_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)))
			FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'::jsonb),
		coalesce((SELECT jsonb_object_agg(k.conname, pg_get_constraintdef(k.oid))
			FROM pg_constraint k WHERE k.conrelid = c.oid), '{}'::jsonb)
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.oid = rel AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
$fn$;

CREATE OR REPLACE FUNCTION syncgate.emit(typ text, sch text, tbl text, doc jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
	PERFORM pg_logical_emit_message(true, 'syncgate.ddl',
		(jsonb_build_object('type', typ, 'project', sch, 'collection', tbl)
			|| CASE WHEN doc IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('document', doc) END)::text);
END
$fn$;

CREATE OR REPLACE FUNCTION syncgate.on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
	r record;
	cur record;
	old syncgate.tables%ROWTYPE;
	k text;
	oc jsonb;
	nc jsonb;
	cols jsonb;
BEGIN
	FOR r IN SELECT DISTINCT objid, command_tag FROM pg_event_trigger_ddl_commands()
		WHERE object_type = 'table' AND schema_name IS DISTINCT FROM 'syncgate'
	LOOP
		SELECT * INTO cur FROM syncgate.table_state(r.objid);
		IF cur.table_name IS NULL THEN CONTINUE; END IF;
		SELECT * INTO old FROM syncgate.tables WHERE relid = r.objid;
		IF NOT FOUND THEN
			IF r.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') THEN
				SELECT coalesce(jsonb_agg(jsonb_build_object('name', v->>'name', 'type', v->>'type') ORDER BY k2::int), '[]')
					INTO cols FROM jsonb_each(cur.columns) AS e(k2, v);
				PERFORM syncgate.emit('create_table', cur.schema_name, cur.table_name,
					jsonb_build_object('columns', cols, 'constraints', cur.constraints));
			END IF;
		ELSE
			IF old.table_name <> cur.table_name OR old.schema_name <> cur.schema_name THEN
				PERFORM syncgate.emit('rename_table', cur.schema_name, cur.table_name,
					jsonb_build_object('oldName', old.table_name, 'oldSchema', old.schema_name, 'name', cur.table_name));
			END IF;
			FOR k IN SELECT jsonb_object_keys(cur.columns) UNION SELECT jsonb_object_keys(old.columns) ORDER BY 1 LOOP
				oc := old.columns -> k;
				nc := cur.columns -> k;
				IF oc IS NULL THEN
					PERFORM syncgate.emit('add_column', cur.schema_name, cur.table_name, nc);
				ELSIF nc IS NULL THEN
					PERFORM syncgate.emit('drop_column', cur.schema_name, cur.table_name, oc);
				ELSIF oc <> nc THEN
					PERFORM syncgate.emit('alter_column', cur.schema_name, cur.table_name,
						nc || jsonb_build_object('oldName', oc->>'name', 'oldType', oc->>'type'));
				END IF;
			END LOOP;
			FOR k IN SELECT jsonb_object_keys(cur.constraints) UNION SELECT jsonb_object_keys(old.constraints) ORDER BY 1 LOOP
				IF NOT old.constraints ? k THEN
					PERFORM syncgate.emit('create_constraint', cur.schema_name, cur.table_name,
						jsonb_build_object('name', k, 'definition', cur.constraints->>k));
				ELSIF NOT cur.constraints ? k THEN
					PERFORM syncgate.emit('drop_constraint', cur.schema_name, cur.table_name,
						jsonb_build_object('name', k, 'definition', old.constraints->>k));
				ELSIF cur.constraints->>k <> old.constraints->>k THEN
					PERFORM syncgate.emit('drop_constraint', cur.schema_name, cur.table_name,
						jsonb_build_object('name', k, 'definition', old.constraints->>k));
					PERFORM syncgate.emit('create_constraint', cur.schema_name, cur.table_name,
						jsonb_build_object('name', k, 'definition', cur.constraints->>k));
				END IF;
			END LOOP;
		END IF;
		INSERT INTO syncgate.tables VALUES (r.objid, cur.schema_name, cur.table_name, cur.columns, cur.constraints)
			ON CONFLICT (relid) DO UPDATE SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name,
				columns = EXCLUDED.columns, constraints = EXCLUDED.constraints;
	END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION syncgate.on_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT objid, schema_name, object_name FROM pg_event_trigger_dropped_objects()
		WHERE object_type = 'table' AND NOT is_temporary AND schema_name IS DISTINCT FROM 'syncgate'
	LOOP
		PERFORM syncgate.emit('drop_table', r.schema_name, r.object_name, NULL);
		DELETE FROM syncgate.tables WHERE relid = r.objid;
	END LOOP;
END
$fn$;

DROP EVENT TRIGGER IF EXISTS syncgate_ddl;
DROP EVENT TRIGGER IF EXISTS syncgate_drop;
CREATE EVENT TRIGGER syncgate_ddl ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
	EXECUTE FUNCTION syncgate.on_ddl();
CREATE EVENT TRIGGER syncgate_drop ON sql_drop EXECUTE FUNCTION syncgate.on_drop();

INSERT INTO syncgate.tables
	SELECT c.oid, s.* FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
		LATERAL syncgate.table_state(c.oid) s
	WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
		AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'syncgate') AND n.nspname NOT LIKE 'pg_toast%'
	ON CONFLICT (relid) DO UPDATE SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name,
		columns = EXCLUDED.columns, constraints = EXCLUDED.constraints;
DELETE FROM syncgate.tables t WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.relid);
COMMIT;
`

// installDDL installs the DDL event trigger (ddlSQL). It needs a
// superuser (event triggers do).
func installDDL(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, ddlSQL)
	if err != nil {
		// A failed statement leaves the transaction aborted.
		_, _ = conn.Exec(ctx, "ROLLBACK")
	}
	return err
}
