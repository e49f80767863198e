// Package postgres captures changes from PostgreSQL's logical replication
// stream (pgoutput) and publishes them as syncgate events, with no
// application code. docs/postgres.md is the user's view; this is the design.
//
// # Pipeline
//
// A Capture runs sessions one after another until its context ends. A
// session connects, waits for the capture lock, makes sure the publication
// (FOR ALL TABLES), the slot (pgoutput) and the DDL event trigger exist,
// and streams with START_REPLICATION (proto_version 1, messages on). Two
// goroutines share a session: the reader owns both connections, decodes
// messages (Relation, Begin, Insert, Update, Delete, Truncate, Commit and
// logical messages) into one transaction's events, and hands each
// committed transaction to the publisher through a bounded channel; the
// publisher merges what is waiting and what arrives within
// Config.BatchDelay (5 ms) of the first (up to Config.MaxBatch events per
// call) and publishes it, in commit order, then records the end of what it
// published. The reader confirms that position to the server, at most every
// 50 ms. Any error ends the session; the next one starts from the slot's
// confirmed position.
//
// # Cost per row
//
// The capture, Redis, the walsender and the database share the machine's
// CPU, which is what bounds the rate: no stage waits idle on another. So
// the pipeline is built for CPU per row, not for overlap. A publish call
// costs a round trip and a fixed share of Redis's work, so small
// transactions are merged for BatchDelay; each position report costs the
// walsender, so they are rate limited; the reader waits for messages on a
// read deadline rather than a context per message (pgconn registers a
// context.AfterFunc for each cancellable context it is given). Calls are
// not pipelined: positions are recorded in call order, a failed call would
// have to stop the calls behind it, and with the CPU the limit there is
// no idle time for a second call in flight to fill.
//
// # Mapping
//
// project = the schema (or Config.Project), collection = the table,
// documentId = the primary key's text values joined with "," (the replica
// identity when there is no primary key; none with neither), document =
// the new row, oldDocument = the old row (full with REPLICA IDENTITY FULL,
// else the key), TRUNCATE = collection:cleared, timestamp = the commit
// time. Values are typed as JSON shows them (appendValue). A TOASTed value
// that an UPDATE left unchanged is not sent by PostgreSQL: it is taken
// from the old row when that is full, else left out of the document.
// Tables whose schema or name break syncgate's name rules are skipped,
// logged once per Relation message and counted in
// syncgate_capture_refused_total{reason="name"}. The schema "syncgate"
// holds what the gateway installs and is never captured.
//
// # Exactly once
//
// The slot's position is confirmed only after the publish returned, that
// is after the events are in the backplane's history: the reader reports
// the end of the newest published transaction, or, when a keepalive
// arrives with everything received published and no transaction open,
// that keepalive's WAL end (so an idle slot holds no WAL). An LSN that
// came with a transaction's data is never reported. A restarted capture
// (a killed gateway, a restarted database whose slot position was saved
// before the last confirmations, a retried publish whose answer was lost)
// receives again what it did not confirm. It skips what it already
// published because every event carries a position — the end LSN of its
// transaction and its index in it, 24 hex digits, growing in commit order —
// and the backplane's PublishAt records the newest position per project in
// the same atomic step as the publish (Redis: the function
// syncgate_publish_at and the key sg:{<project>}:pos:<source>), skipping
// events at or before it. Batching may differ between runs: the check is
// per event. The source names the slot and the database's system
// identifier and name, so two databases never share positions.
//
// # One capturer
//
// The capture lock is a session-level advisory lock (pg_try_advisory_lock
// on a hash of the slot name) held by the session's ordinary connection.
// Standby nodes try it every Config.LockRetry. When the capturing process
// dies its connections close and the server releases the lock; a standby
// takes over at its next try. The reader pings the lock connection every
// second and ends the session when it fails. The slot itself admits one
// reader at a time, and positions make even an overlap harmless.
//
// # DDL and messages
//
// The event trigger (ddl.go) emits a transactional logical message with
// prefix "syncgate.ddl" carrying the event, so schema changes arrive in
// the same stream in transaction order. Applications call
// pg_logical_emit_message(true, 'syncgate', '<event JSON>'); the event is
// published when its transaction commits (a rolled-back one never is).
// A message that is not a valid event is skipped, logged and counted
// (reason "message").
//
// # Concurrency
//
// A Capture is safe for concurrent use; Run is called once. Every
// goroutine belongs to a session, which waits for them before it returns.
// Memory: a transaction's events are held until its commit; the hand-over
// queue holds at most 2,048 transactions (queueTxs).
package postgres
