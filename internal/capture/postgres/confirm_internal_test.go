package postgres

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// Wire messages of the replication stream, as the server sends them.

func keepalive(walEnd pglogrepl.LSN) []byte {
	b := []byte{pglogrepl.PrimaryKeepaliveMessageByteID}
	b = binary.BigEndian.AppendUint64(b, uint64(walEnd))
	b = binary.BigEndian.AppendUint64(b, 0) // server time
	return append(b, 0)                     // no reply requested
}

func xlogData(walEnd pglogrepl.LSN, payload []byte) []byte {
	b := []byte{pglogrepl.XLogDataByteID}
	b = binary.BigEndian.AppendUint64(b, uint64(walEnd)) // WAL start
	b = binary.BigEndian.AppendUint64(b, uint64(walEnd)) // WAL end: what a logical walsender sends
	b = binary.BigEndian.AppendUint64(b, 0)
	return append(b, payload...)
}

func begin(final pglogrepl.LSN) []byte {
	b := []byte{'B'}
	b = binary.BigEndian.AppendUint64(b, uint64(final))
	b = binary.BigEndian.AppendUint64(b, 0) // commit time
	return binary.BigEndian.AppendUint32(b, 7)
}

func commit(end pglogrepl.LSN) []byte {
	b := []byte{'C', 0}
	b = binary.BigEndian.AppendUint64(b, uint64(end-0x10)) // commit record
	b = binary.BigEndian.AppendUint64(b, uint64(end))      // its end
	return binary.BigEndian.AppendUint64(b, 0)
}

// TestConfirmNeverPassesUnpublished: the position reported to the server
// is never past a transaction whose events are not published — not when a
// stop interrupts the hand-over of a decoded transaction, nor when a
// keepalive arrives while one is being published — and an idle stream
// confirms the keepalive's WAL end, so the slot does not hold WAL.
func TestConfirmNeverPassesUnpublished(t *testing.T) {
	c := &Capture{cfg: Config{StatusInterval: time.Hour}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s := &stream{c: c, txs: make(chan *txn, 1)}
	s.dec = newDecoder("", nil, c.log, nil)
	ctx := context.Background()
	feed := func(ctx context.Context, data []byte) {
		t.Helper()
		if err := s.copyData(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	// publishOne is the publisher: it takes one handed-over transaction
	// and records it as published.
	publishOne := func() {
		t.Helper()
		select {
		case tx := <-s.txs:
			s.published.Store(uint64(tx.end))
		default:
			t.Fatal("no transaction handed over")
		}
	}
	// check: the confirmable position is at most hi (what is published,
	// or a keepalive's end that nothing unpublished precedes) and at
	// least lo (progress).
	check := func(step string, lo, hi pglogrepl.LSN) {
		t.Helper()
		if got := s.confirmable(); got < lo || got > hi {
			t.Fatalf("%s: confirmable %s, want %s to %s", step, got, lo, hi)
		}
	}

	feed(ctx, keepalive(0x100))
	check("idle keepalive", 0x100, 0x100)

	feed(ctx, xlogData(0x110, begin(0x200)))
	feed(ctx, keepalive(0x180)) // mid-transaction: WAL end passes nothing published
	check("keepalive inside a transaction", 0, 0x100)
	feed(ctx, xlogData(0x200, commit(0x200)))
	check("handed over, not published", 0, 0x100)
	feed(ctx, keepalive(0x280)) // the publisher has not finished: 0x280 may only be confirmed once it has
	check("keepalive while publishing", 0, 0x100)
	publishOne()
	check("published", 0x200, 0x280)

	// A stop arrives while the next transaction is decoded and waiting to
	// be handed over (the queue is full here; in the gateway the select
	// may pick the stop over a free queue): it is never published, so
	// the final report must not pass it.
	s.txs = make(chan *txn) // no room, nobody receiving
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	feed(stopped, xlogData(0x300, begin(0x300)))
	feed(stopped, xlogData(0x300, commit(0x300)))
	check("stop during the hand-over", 0x200, 0x280)

	// Next session: everything published, the server idle.
	s.txs = make(chan *txn, 1)
	feed(ctx, xlogData(0x310, begin(0x400)))
	feed(ctx, xlogData(0x400, commit(0x400)))
	publishOne()
	feed(ctx, keepalive(0x480))
	check("idle again", 0x480, 0x480)
}
