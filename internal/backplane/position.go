package backplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/syncgate/syncgate"
)

// PublishAt is for sources that can send the same events again after a
// restart, such as change capture from a PostgreSQL replication slot: it
// publishes events as Publish does and, in the same atomic step, records
// for source the position of the newest event published to each project.
// Events at or before the position already recorded for their project are
// skipped and get the offset "". So a source that republishes from an
// older point publishes each event once, however it batches them.
//
// A position is 24 hex digits (ComparePositions orders them); within one
// source, positions must grow in the order the source produces events.
// Atomicity is per call on a single Redis and per project on Redis Cluster,
// which is what each project's recorded position needs.
//
// Implemented by Redis (the function syncgate_publish_at, keys
// sg:{<project>}:pos:<source>; docs/redis.md) and Memory.
type PositionPublisher interface {
	PublishAt(ctx context.Context, source string, events []syncgate.Event, positions []string) ([]string, error)
}

var (
	_ PositionPublisher = (*Redis)(nil)
	_ PositionPublisher = (*Memory)(nil)
)

// ErrBadPosition is wrapped when a PublishAt source or position is malformed.
var ErrBadPosition = errors.New("bad position")

type positions struct {
	source string
	pos    []string
}

func checkPositions(source string, events []syncgate.Event, pos []string) error {
	if len(source) == 0 || len(source) > 64 || !validSource(source) {
		return fmt.Errorf("%w: source %q must match [A-Za-z0-9_.-]{1,64}", ErrBadPosition, clip(source))
	}
	if len(pos) != len(events) {
		return fmt.Errorf("%w: %d positions for %d events", ErrBadPosition, len(pos), len(events))
	}
	for i, p := range pos {
		if !ValidPosition(p) {
			return fmt.Errorf("%w: event %d: position %q must be 24 hex digits", ErrBadPosition, i, clip(p))
		}
	}
	return nil
}

func validSource(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ValidPosition reports whether p is a PublishAt position: 24 hex digits.
func ValidPosition(p string) bool {
	if len(p) != 24 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// ComparePositions orders two valid positions by value: -1, 0 or +1.
func ComparePositions(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := hexVal(a[i]), hexVal(b[i])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// PublishAt implements PositionPublisher with one syncgate_publish_at call
// (one per project on Redis Cluster).
func (b *Redis) PublishAt(ctx context.Context, source string, events []syncgate.Event, pos []string) ([]string, error) {
	if err := checkPositions(source, events, pos); err != nil {
		return nil, err
	}
	return b.publish(ctx, events, &positions{source: source, pos: pos})
}

// PublishAt implements PositionPublisher.
func (m *Memory) PublishAt(ctx context.Context, source string, events []syncgate.Event, pos []string) ([]string, error) {
	if m.cfgErr != nil {
		return nil, m.cfgErr
	}
	if err := checkPositions(source, events, pos); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.dmu.Lock()
	defer m.dmu.Unlock()
	m.mu.Lock()
	locked := true
	defer func() {
		if locked {
			m.mu.Unlock()
		}
	}()
	if m.closed {
		return nil, fmt.Errorf("publish: %w: closed", ErrUnavailable)
	}
	if m.positions == nil {
		m.positions = make(map[string]string)
	}
	var keep []syncgate.Event
	var idx []int
	newest := map[string]string{}
	for i, ev := range events {
		key := ev.Project + "\x00" + source
		old, ok := newest[key]
		if !ok {
			old, ok = m.positions[key]
		}
		if ok && ComparePositions(old, pos[i]) >= 0 {
			continue
		}
		newest[key] = pos[i]
		keep = append(keep, ev)
		idx = append(idx, i)
	}
	offsets := make([]string, len(events))
	if len(keep) == 0 {
		return offsets, nil
	}
	out, dl, err := m.publishLocked(keep)
	if err != nil {
		return nil, err
	}
	for key, p := range newest {
		m.positions[key] = p
	}
	recv := m.recv
	m.mu.Unlock()
	locked = false
	deliverMem(recv, dl)
	for j, i := range idx {
		offsets[i] = out[j]
	}
	return offsets, nil
}
