package backplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/syncgate/syncgate"
)

// MemoryConfig configures the in-memory backplane.
type MemoryConfig struct {
	// HistorySize is the number of events kept per stream; default 1000.
	// A negative value keeps no history.
	HistorySize int
	// HistoryTTL is how long an event stays in history; default 24h.
	HistoryTTL time.Duration
	// Now returns the current time; default time.Now. Tests move it.
	Now func() time.Time
}

// Validate names the first bad field and its value. A negative HistorySize
// is valid: it keeps no history.
func (c MemoryConfig) Validate() error {
	if c.HistoryTTL < 0 {
		return fmt.Errorf("MemoryConfig.HistoryTTL=%s: must not be negative", c.HistoryTTL)
	}
	return nil
}

// Memory is a single-node backplane keeping history in process memory. Its
// epoch is random per process, so offsets from an earlier process resume
// with recovered=false; each stream's offsets carry its StreamTag, so an
// offset of another stream resumes with recovered=false too.
type Memory struct {
	cfg    MemoryConfig
	epoch  string
	cfgErr error // cfg.Validate(): every call fails with it

	// dmu orders delivery: held from appending events until the Receiver
	// has them, so live order is offset order. It is taken before mu,
	// and the Receiver is called with dmu alone held: it may call History,
	// Subscribe and Unsubscribe, not Publish.
	dmu     sync.Mutex
	mu      sync.Mutex // guards streams, recv, closed, positions
	streams map[Stream]*memStream
	recv    Receiver
	closed  bool

	positions map[string]string // PublishAt: "<project>\x00<source>" -> position
}

type memStream struct {
	last       uint64     // sequence of the newest event; 0 when none yet
	maxDeleted uint64     // sequence of the newest event trimmed away
	entries    []memEntry // all[head:]: the history, oldest first
	all        []memEntry // the backing slice; all[:head] are trimmed slots
	head       int
}

type memEntry struct {
	seq  uint64
	at   time.Time
	ev   syncgate.Event
	size int // approximate size of ev's JSON, for Page.MaxBytes
}

var _ Backplane = (*Memory)(nil)

// NewMemory returns an in-memory backplane. With a configuration that
// Validate refuses, Start, Publish, PublishAt and History fail with that
// error.
func NewMemory(cfg MemoryConfig) *Memory {
	cfgErr := cfg.Validate()
	if cfg.HistorySize == 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistorySize < 0 {
		cfg.HistorySize = 0
	}
	if cfg.HistoryTTL == 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Memory{cfg: cfg, cfgErr: cfgErr, epoch: "m" + hex.EncodeToString(b[:]), streams: make(map[Stream]*memStream)}
}

// Start implements Backplane.
func (m *Memory) Start(ctx context.Context, r Receiver) error {
	if m.cfgErr != nil {
		return m.cfgErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recv = r
	return nil
}

// Publish implements Backplane. Events are appended and delivered in one
// step under dmu, so every stream's live order equals its offset order; the
// Receiver is called after mu is released.
func (m *Memory) Publish(ctx context.Context, events []syncgate.Event) ([]string, error) {
	if m.cfgErr != nil {
		return nil, m.cfgErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.dmu.Lock()
	defer m.dmu.Unlock()
	m.mu.Lock()
	offsets, out, err := m.publishLocked(events)
	recv := m.recv
	m.mu.Unlock()
	deliverMem(recv, out)
	return offsets, err
}

// memDelivery is one event for the Receiver.
type memDelivery struct {
	s   Stream
	off Offset
	ev  syncgate.Event
}

// deliverMem hands out to r. m.dmu is held, m.mu is not.
func deliverMem(r Receiver, out []memDelivery) {
	if r == nil {
		return
	}
	for i := range out {
		r.Receive(out[i].s, out[i].off, &out[i].ev)
	}
}

// publishLocked appends events and returns their offsets and what to
// deliver. m.dmu and m.mu are held.
func (m *Memory) publishLocked(events []syncgate.Event) ([]string, []memDelivery, error) {
	if m.closed {
		return nil, nil, fmt.Errorf("publish: %w: closed", ErrUnavailable)
	}
	now := m.cfg.Now()
	offsets := make([]string, len(events))
	var out []memDelivery
	if m.recv != nil {
		out = make([]memDelivery, 0, 2*len(events))
	}
	for i := range events {
		ev := events[i]
		if ev.Timestamp.IsZero() {
			ev.Timestamp = now
		}
		cs := Stream{ev.Project, ev.Collection}
		ps := Stream{ev.Project, syncgate.AllCollections}
		cev, coff := m.append(cs, ev, now)
		pev, poff := m.append(ps, ev, now)
		offsets[i] = cev.Offset
		if m.recv != nil {
			out = append(out, memDelivery{cs, coff, cev}, memDelivery{ps, poff, pev})
		}
	}
	return offsets, out, nil
}

// append adds ev to stream s and returns it with its offset. m.mu is held.
func (m *Memory) append(s Stream, ev syncgate.Event, now time.Time) (syncgate.Event, Offset) {
	st := m.streams[s]
	if st == nil {
		st = &memStream{}
		m.streams[s] = st
	}
	st.last++
	off := Offset{Epoch: m.epoch, Stream: StreamTag(s), Hi: st.last}
	ev.Offset = off.String()
	st.all = append(st.all, memEntry{seq: st.last, at: now, ev: ev, size: approxSize(&ev)})
	st.entries = st.all[st.head:]
	m.trim(st, now)
	return ev, off
}

// trim drops entries beyond the size limit or older than the TTL.
func (m *Memory) trim(st *memStream, now time.Time) {
	drop := 0
	if over := len(st.entries) - m.cfg.HistorySize; over > 0 {
		drop = over
	}
	cutoff := now.Add(-m.cfg.HistoryTTL)
	for drop < len(st.entries) && st.entries[drop].at.Before(cutoff) {
		drop++
	}
	if drop == 0 {
		return
	}
	st.maxDeleted = st.entries[drop-1].seq
	clear(st.entries[:drop]) // the GC may have the events
	st.head += drop
	st.entries = st.all[st.head:]
	// Copy down once the trimmed slots outnumber the kept ones, so the
	// backing array stays within twice the history under a steady publish
	// rate and each entry is copied about once (copying on every trim
	// moved the whole history per event: 14–29% of the gateway's CPU in
	// scenario 3).
	if st.head >= len(st.entries) {
		n := copy(st.all, st.entries)
		clear(st.all[n:])
		st.all, st.head = st.all[:n], 0
		st.entries = st.all
	}
}

// Subscribe implements Backplane; one node needs no channel subscription.
func (m *Memory) Subscribe(ctx context.Context, s Stream) error { return ctx.Err() }

// Unsubscribe implements Backplane.
func (m *Memory) Unsubscribe(ctx context.Context, s Stream) error { return nil }

// History implements Backplane.
func (m *Memory) History(ctx context.Context, s Stream, since string, page Page) (History, error) {
	if m.cfgErr != nil {
		return History{}, m.cfgErr
	}
	var from Offset
	if since != "" {
		var err error
		if from, err = ParseOffset(since); err != nil {
			return History{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return History{}, err
	}
	page = page.withDefaults()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.streams[s]
	if st == nil {
		// Do not create it: a client naming streams nobody publishes to
		// must not grow the map.
		st = &memStream{}
	}
	m.trim(st, m.cfg.Now())
	h := History{Head: Offset{Epoch: m.epoch, Stream: StreamTag(s), Hi: st.last}.String()}
	switch {
	case since == "":
		h.Recovered = true
	case from.Epoch != m.epoch, from.Foreign(s), from.Lo != 0, from.Hi > st.last, from.Hi < st.maxDeleted:
		h.Recovered = false
	default:
		h.Recovered = true
		i := sort.Search(len(st.entries), func(i int) bool { return st.entries[i].seq > from.Hi })
		for ; i < len(st.entries); i++ {
			e := &st.entries[i]
			if len(h.Events) == page.MaxEvents || len(h.Events) > 0 && h.Bytes+e.size > page.MaxBytes {
				h.More = true
				break
			}
			h.Events = append(h.Events, e.ev)
			h.Bytes += e.size
		}
	}
	return h, nil
}

// approxSize estimates the length of ev's JSON, cheaply, for page bounds.
func approxSize(ev *syncgate.Event) int {
	n := 160 + len(ev.Type) + len(ev.Project) + len(ev.Collection) + len(ev.DocumentID) +
		len(ev.Document) + len(ev.OldDocument) + len(ev.Actor)
	if a := ev.Audience; a != nil {
		for _, u := range a.Users {
			n += len(u) + 3
		}
		for _, r := range a.Roles {
			n += len(r) + 3
		}
	}
	return n
}

// Close implements Backplane.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.recv = nil
	return nil
}
