package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/metrics"
)

// Publisher publishes events with their positions, skipping those at or
// before the position already recorded for the source (per project), in
// the same atomic step that records the newest. backplane.Redis and
// backplane.Memory implement it (backplane.PositionPublisher).
type Publisher interface {
	PublishAt(ctx context.Context, source string, events []syncgate.Event, positions []string) ([]string, error)
}

// Capture follows one database's logical replication stream and publishes
// its changes. Run it once; it returns when its context ends.
type Capture struct {
	cfg Config
	pub Publisher
	log *slog.Logger
	m   *metrics.Metrics

	running atomic.Bool

	mu     sync.Mutex
	active bool
	state  chan struct{} // closed and replaced at every change of active
}

// New returns a Capture; it connects when Run is called.
func New(cfg Config, pub Publisher) (*Capture, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, errors.New("postgres capture: no publisher")
	}
	cfg.setDefaults()
	return &Capture{
		cfg: cfg, pub: pub, m: cfg.Metrics, state: make(chan struct{}),
		log: cfg.Logger.With("component", "postgres-capture", "slot", cfg.Slot),
	}, nil
}

// Active reports whether this node holds the capture lock and streams,
// and a channel closed at the next change.
func (c *Capture) Active() (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active, c.state
}

func (c *Capture) setActive(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active == on {
		return
	}
	c.active = on
	close(c.state)
	c.state = make(chan struct{})
	c.m.CaptureActive(on)
}

// Run captures until ctx ends: it waits for the capture lock (so that one
// node of many captures), sets up the publication, slot and DDL trigger,
// and streams. Errors (the database or Redis going away, losing the lock)
// end the session, which starts again after a backoff. Run returns nil
// when ctx ends, after its goroutines have exited.
func (c *Capture) Run(ctx context.Context) error {
	if c.running.Swap(true) {
		return errors.New("postgres capture: Run called twice")
	}
	backoff := 250 * time.Millisecond
	for {
		start := time.Now()
		err := c.session(ctx)
		c.setActive(false)
		if ctx.Err() != nil {
			return nil
		}
		c.m.CaptureRestart()
		if time.Since(start) > time.Minute {
			backoff = 250 * time.Millisecond
		}
		c.log.Warn("capture session ended; starting again", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// lockKey is the advisory lock that makes one node capture a slot.
func (c *Capture) lockKey() int64 {
	h := fnv.New64a()
	h.Write([]byte("syncgate/" + c.cfg.Slot))
	return int64(h.Sum64())
}

// session is one connection's life: lock, setup, stream.
func (c *Capture) session(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.cfg.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if err := c.lock(ctx, conn); err != nil {
		return err
	}
	if err := c.setup(ctx, conn); err != nil {
		return err
	}
	rcfg, err := pgconn.ParseConfig(c.cfg.URL)
	if err != nil {
		return err
	}
	rcfg.RuntimeParams["replication"] = "database"
	for k, v := range sessionParams {
		rcfg.RuntimeParams[k] = v
	}
	repl, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		return fmt.Errorf("replication connection: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = repl.Close(cctx)
	}()
	sys, err := pglogrepl.IdentifySystem(ctx, repl)
	if err != nil {
		return fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	err = pglogrepl.StartReplication(ctx, repl, c.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + c.cfg.Publication + "'", "messages 'true'"},
	})
	if err != nil {
		return fmt.Errorf("START_REPLICATION: %w", err)
	}
	s := &stream{
		c: c, conn: conn, repl: repl,
		source: sourceName(c.cfg.Slot, sys.SystemID, sys.DBName),
		txs:    make(chan *txn, queueTxs),
	}
	s.dec = newDecoder(c.cfg.Project, s.primaryKey, c.log, c.m)
	c.setActive(true)
	c.log.Info("capturing changes", "publication", c.cfg.Publication, "database", sys.DBName, "source", s.source)
	return s.run(ctx)
}

// queueTxs bounds the transactions decoded and waiting for the publisher.
// The publisher merges what waits into one call of up to MaxBatch events,
// so with small transactions the queue must hold at least MaxBatch of them
// for calls to be full: a publish costs a round trip to Redis whatever its
// size, and 256 single-row transactions a call capped capture at about
// 5,500 rows/s on the development VM.
const queueTxs = 2048

// sourceName names the position records of this slot in this database
// (PublishAt's source): a slot of the same name in another database or
// server has its own.
func sourceName(slot, systemID, db string) string {
	h := fnv.New64a()
	h.Write([]byte(systemID + "/" + db))
	return fmt.Sprintf("pg.%s.%016x", slot, h.Sum64())
}

// lock waits for the advisory lock, held by this session's connection
// until it closes (or the process dies and the server drops it).
func (c *Capture) lock(ctx context.Context, conn *pgx.Conn) error {
	for waited := false; ; waited = true {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", c.lockKey()).Scan(&ok); err != nil {
			return fmt.Errorf("capture lock: %w", err)
		}
		if ok {
			if waited {
				c.log.Info("took over the capture lock")
			}
			return nil
		}
		if !waited {
			c.log.Info("another node captures this slot; standing by", "retry", c.cfg.LockRetry)
		}
		t := time.NewTimer(c.cfg.LockRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// setup creates the publication and the slot when they are absent and
// installs the DDL trigger.
func (c *Capture) setup(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", c.cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("checking publication %s: %w", c.cfg.Publication, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+pgx.Identifier{c.cfg.Publication}.Sanitize()+" FOR ALL TABLES"); err != nil {
			return fmt.Errorf("creating publication %s: %w", c.cfg.Publication, err)
		}
		c.log.Info("created publication FOR ALL TABLES", "publication", c.cfg.Publication)
	}
	if *c.cfg.InstallDDLTrigger {
		if err := installDDL(ctx, conn); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// Row changes do not depend on it: capture them anyway.
			c.log.Warn("could not install the DDL event trigger (it needs a superuser); schema changes are not captured", "err", err)
		}
	}
	var plugin, db string
	err := conn.QueryRow(ctx, "SELECT plugin, coalesce(database, '') FROM pg_replication_slots WHERE slot_name = $1", c.cfg.Slot).Scan(&plugin, &db)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", c.cfg.Slot); err != nil {
			return fmt.Errorf("creating replication slot %s: %w", c.cfg.Slot, err)
		}
		c.log.Info("created replication slot", "plugin", "pgoutput")
	case err != nil:
		return fmt.Errorf("checking replication slot %s: %w", c.cfg.Slot, err)
	case plugin != "pgoutput":
		return fmt.Errorf("replication slot %s uses plugin %q, want pgoutput", c.cfg.Slot, plugin)
	}
	// Where the session resumes, for reading a log after a failure.
	var confirmed, restart string
	if err := conn.QueryRow(ctx, "SELECT coalesce(confirmed_flush_lsn::text, ''), coalesce(restart_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1", c.cfg.Slot).Scan(&confirmed, &restart); err == nil {
		c.log.Info("replication slot", "confirmed_flush_lsn", confirmed, "restart_lsn", restart)
	}
	return nil
}

// stream is one START_REPLICATION: the reader (this goroutine, owning
// both connections) decodes and hands committed transactions to the
// publisher goroutine through txs; the publisher stores the end of what it
// published in published; the reader confirms that to the server.
type stream struct {
	c      *Capture
	conn   *pgx.Conn      // lock holder, catalog lookups
	repl   *pgconn.PgConn // replication
	dec    *decoder
	source string
	txs    chan *txn

	handed    pglogrepl.LSN // end of the last transaction given to the publisher
	published atomic.Uint64 // end of the last transaction published
	idleEnd   pglogrepl.LSN // the server's WAL end from the newest keepalive that found nothing pending
	walEnd    pglogrepl.LSN // the newest WAL position the server mentioned (lag metric only)
	sent      pglogrepl.LSN // last position reported
	sentAt    time.Time     // when
	skipped   bool          // a publish skipped events already published (logged once a session)
}

func (s *stream) run(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.publish(sctx)
	}()
	err := s.read(sctx)
	cancel()
	wg.Wait()
	// Report what was published before closing, so a clean stop leaves the
	// slot at the newest position.
	fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer fcancel()
	_ = s.status(fctx, true)
	return err
}

// confirmable is the position the server may forget WAL before. It never
// passes an event that is not in the backplane's history: it is the end
// of what was published, or the WAL end of a keepalive that arrived when
// everything received was published and no transaction was open
// (idleEnd). A keepalive's WAL end is the end of what the server has
// decoded and sent, so every transaction committed before it was received
// before it; one committed after has its commit record past it. An LSN
// from XLogData (a transaction not yet published, or decoded and not yet
// handed over when a stop interrupts the hand-over) is never confirmed.
func (s *stream) confirmable() pglogrepl.LSN {
	return max(pglogrepl.LSN(s.published.Load()), s.idleEnd)
}

// idle reports whether everything received is published and no
// transaction is open. The reader calls it outside hand, so nothing is
// decoded and not handed over.
func (s *stream) idle() bool {
	return s.dec.tx == nil && pglogrepl.LSN(s.published.Load()) == s.handed
}

// status reports the confirmable position when it moved, or always with
// force.
func (s *stream) status(ctx context.Context, force bool) error {
	pos := s.confirmable()
	if pos == s.sent && !force {
		return nil
	}
	if pos == 0 {
		return nil
	}
	if err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos}); err != nil {
		return fmt.Errorf("standby status update: %w", err)
	}
	s.sent = pos
	s.sentAt = time.Now()
	s.walEnd = max(s.walEnd, pos)
	s.c.m.CapturePosition(uint64(pos), uint64(s.walEnd))
	if pos >= s.walEnd && s.idle() {
		s.c.m.CaptureLag(0)
	}
	return nil
}

// confirmEvery is the least time between two reports of a moved
// position: the walsender handles each, and reporting after every publish
// call (thousands a second at small transactions) costs its CPU. A
// publish is reported within about twice this.
const confirmEvery = 50 * time.Millisecond

// read receives and decodes until ctx ends or the stream fails.
func (s *stream) read(ctx context.Context) error {
	const leaseEvery = time.Second
	nextStatus := time.Now().Add(s.c.cfg.StatusInterval)
	nextLease := time.Now().Add(leaseEvery)
	nc := s.repl.Conn()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		now := time.Now()
		force := now.After(nextStatus)
		if force || now.Sub(s.sentAt) >= confirmEvery {
			if err := s.status(ctx, force); err != nil {
				return err
			}
		}
		if force {
			nextStatus = now.Add(s.c.cfg.StatusInterval)
		}
		if now.After(nextLease) {
			// The lock lives as long as this connection; a dead one means
			// another node may be capturing already.
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := s.conn.Ping(lctx)
			cancel()
			if err != nil {
				return fmt.Errorf("capture lock connection: %w", err)
			}
			nextLease = now.Add(leaseEvery)
		}
		wake := nextStatus
		if nextLease.Before(wake) {
			wake = nextLease
		}
		if soon := now.Add(confirmEvery); (pglogrepl.LSN(s.published.Load()) != s.handed || s.confirmable() != s.sent) && soon.Before(wake) {
			wake = soon // confirm soon after the publish
		}
		// A read deadline on the connection rather than a context per
		// message: pgconn watches a cancellable context with a
		// context.AfterFunc of its own on every call, which cost a tenth of
		// the gateway's CPU at 10,000 rows/s. ctx's end sets the deadline
		// to now (below), and a deadline set after it is caught here.
		if err := nc.SetReadDeadline(wake); err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		msg, err := s.repl.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receiving: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.copyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		default:
			// Notices and the like.
		}
	}
}

func (s *stream) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return err
		}
		s.walEnd = max(s.walEnd, k.ServerWALEnd)
		if s.idle() {
			s.idleEnd = max(s.idleEnd, k.ServerWALEnd)
		}
		if k.ReplyRequested {
			return s.status(ctx, true)
		}
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return err
		}
		s.walEnd = max(s.walEnd, x.ServerWALEnd)
		tx, err := s.dec.handle(x.WALData)
		if err != nil {
			return err
		}
		if tx != nil {
			return s.hand(ctx, tx)
		}
	}
	return nil
}

// hand gives a committed transaction to the publisher, reporting the
// position meanwhile when the publisher is behind (the queue is bounded, so
// a stalled backplane stalls the stream, not memory).
func (s *stream) hand(ctx context.Context, tx *txn) error {
	if len(tx.events) == 0 {
		// Nothing to publish (e.g. only skipped tables): once what came
		// before is published, this position can be confirmed too.
		tx.kinds = nil
	}
	select {
	case s.txs <- tx:
		s.handed = tx.end
		return nil
	default:
	}
	t := time.NewTicker(s.c.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case s.txs <- tx:
			s.handed = tx.end
			return nil
		case <-t.C:
			if err := s.status(ctx, true); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// primaryKey looks up a relation's primary key columns in key order.
func (s *stream) primaryKey(relID uint32) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var names []string
	err := s.conn.QueryRow(ctx, `
		SELECT coalesce(array_agg(a.attname::text ORDER BY k.n), '{}')
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1 AND i.indisprimary`, relID).Scan(&names)
	return names, err
}

// publish publishes what the reader hands over, in order, merging the
// transactions that arrive within BatchDelay of the first into one call
// (up to MaxBatch events), and retries a failed call until it succeeds or
// ctx ends: positions make a retry of a call that may have run harmless.
//
// A call costs a round trip and a fixed share of Redis's work whatever
// its size, so at thousands of small transactions a second merging them
// is what keeps the CPU per row low (the machine's CPU, shared with the
// database and Redis, is what bounds the rate); the delay bounds what
// that costs in latency.
func (s *stream) publish(ctx context.Context) {
	max := s.c.cfg.MaxBatch
	delay := s.c.cfg.BatchDelay
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		var batch []*txn
		select {
		case tx := <-s.txs:
			batch = append(batch, tx)
		case <-ctx.Done():
			return
		}
		n := len(batch[0].events)
		if delay > 0 && n < max {
			linger.Reset(delay)
		}
	more:
		for n < max {
			select {
			case tx := <-s.txs:
				batch = append(batch, tx)
				n += len(tx.events)
				continue
			default:
			}
			if delay <= 0 {
				break
			}
			select {
			case tx := <-s.txs:
				batch = append(batch, tx)
				n += len(tx.events)
			case <-linger.C:
				break more
			case <-ctx.Done():
				return
			}
		}
		linger.Stop()
		var events []syncgate.Event
		var positions, kinds []string
		for _, tx := range batch {
			for i, ev := range tx.events {
				if ev.Timestamp.IsZero() {
					ev.Timestamp = tx.commitTime
				}
				events = append(events, ev)
				positions = append(positions, fmt.Sprintf("%016X%08X", uint64(tx.end), i))
				kinds = append(kinds, tx.kinds[i])
			}
		}
		for from := 0; from < len(events); from += max {
			to := min(from+max, len(events))
			offsets, ok := s.publishChunk(ctx, events[from:to], positions[from:to])
			if !ok {
				return
			}
			skipped := 0
			for i, o := range offsets {
				if o != "" {
					s.c.m.CaptureEvent(kinds[from+i], 1)
				} else {
					skipped++
				}
			}
			if skipped > 0 && !s.skipped {
				// Expected after a restart: what was published but not
				// confirmed comes again. Once a session is enough.
				s.skipped = true
				s.c.log.Info("skipping events published before the restart (the slot sends again what it had not confirmed)",
					"skipped", skipped, "of", to-from, "first_position", positions[from], "last_position", positions[to-1])
			}
		}
		last := batch[len(batch)-1]
		s.published.Store(uint64(last.end))
		s.c.m.CaptureLag(time.Since(last.commitTime).Seconds())
	}
}

func (s *stream) publishChunk(ctx context.Context, events []syncgate.Event, positions []string) ([]string, bool) {
	backoff := 50 * time.Millisecond
	for failures := 0; ; failures++ {
		offsets, err := s.c.pub.PublishAt(ctx, s.source, events, positions)
		if err == nil {
			if failures > 0 {
				s.c.log.Info("publishing captured changes again", "after_failures", failures)
			}
			return offsets, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if failures == 0 || failures%20 == 0 {
			s.c.log.Warn("publishing captured changes failed; retrying (the slot keeps them)", "events", len(events), "err", err, "failures", failures+1)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
