package redisfn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate"
)

// Encoded is an event validated and encoded for publishing.
type Encoded struct {
	Project, Collection string
	JSON                []byte
}

// Encode validates events and encodes them for Publish, giving those
// without a timestamp now. events is not modified.
func Encode(events []syncgate.Event, now time.Time) ([]Encoded, error) {
	out := make([]Encoded, len(events))
	for i := range events {
		ev := events[i]
		if err := ev.Validate(); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if ev.Timestamp.IsZero() {
			ev.Timestamp = now.UTC()
		}
		b, err := ev.Encode()
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		out[i] = Encoded{Project: ev.Project, Collection: ev.Collection, JSON: b}
	}
	return out, nil
}

// At asks Publish for syncgate_publish_at: Source records, per project, the
// position of the newest event published, and events at or before the
// recorded position are skipped (offset ""). Positions has one position
// (24 hex digits) per event.
type At struct {
	Source    string
	Positions []string
}

// Loader installs the library when a call finds it missing; Publish and
// History call it at most once per call, then retry.
type Loader func(ctx context.Context) error

// PublisherLoader is the Loader of a publisher: it installs the library
// with limits l, marked as a publisher's, and keeps one that is there.
func PublisherLoader(rdb redis.UniversalClient, l Limits) Loader {
	return func(ctx context.Context) error { return Load(ctx, rdb, l, OwnerPublisher, false) }
}

// Publish publishes encoded events with syncgate_publish_encoded (or, with
// at, syncgate_publish_at) and returns each event's offset in its
// collection stream, tagged with the stream (TagOffset). On a single Redis
// the whole slice is one atomic call; on Redis Cluster each project's
// events are one atomic call, made in the order projects first appear, and
// an error stops at the failing project (earlier ones are published; the
// error names the project).
//
// A missing library is installed with load and the call retried once.
// Errors are classified (Classify).
func Publish(ctx context.Context, rdb redis.UniversalClient, events []Encoded, at *At, load Loader) ([]string, error) {
	if len(events) == 0 {
		return nil, nil
	}
	if at != nil && len(at.Positions) != len(events) {
		return nil, fmt.Errorf("publish: %d positions for %d events", len(at.Positions), len(events))
	}
	args := func(group []int) []any {
		if at == nil {
			a := make([]any, len(group))
			for j, i := range group {
				a[j] = events[i].JSON
			}
			return a
		}
		a := make([]any, 0, 1+2*len(group))
		a = append(a, at.Source)
		for _, i := range group {
			a = append(a, at.Positions[i], events[i].JSON)
		}
		return a
	}
	fn := "syncgate_publish_encoded"
	if at != nil {
		fn = "syncgate_publish_at"
	}
	offsets := make([]string, len(events))
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		all := make([]int, len(events))
		for i := range all {
			all[i] = i
		}
		out, err := fcallPublish(ctx, rdb, load, fn, projectKeys(events), args(all), len(events))
		if err != nil {
			return nil, err
		}
		copy(offsets, out)
	} else {
		for _, group := range groupByProject(events) {
			p := events[group[0]].Project
			out, err := fcallPublish(ctx, rdb, load, fn, []string{EpochKey(p)}, args(group), len(group))
			if err != nil {
				return nil, fmt.Errorf("project %s: %w", p, err)
			}
			for j, i := range group {
				offsets[i] = out[j]
			}
		}
	}
	for i, o := range offsets {
		offsets[i] = TagOffset(o, events[i].Project, events[i].Collection)
	}
	return offsets, nil
}

func fcallPublish(ctx context.Context, rdb redis.UniversalClient, load Loader, fn string, keys []string, args []any, n int) ([]string, error) {
	for attempt := 0; ; attempt++ {
		out, err := rdb.FCall(ctx, fn, keys, args...).StringSlice()
		if err == nil {
			if len(out) != n {
				return nil, fmt.Errorf("%s returned %d offsets for %d events", fn, len(out), n)
			}
			return out, nil
		}
		if attempt == 0 && load != nil && IsFunctionMissing(err) {
			if lerr := load(ctx); lerr != nil {
				return nil, lerr
			}
			continue
		}
		return nil, Classify("publish", err)
	}
}

// groupByProject returns the indexes of events per project, projects in
// order of first appearance.
func groupByProject(events []Encoded) [][]int {
	var groups [][]int
	at := map[string]int{}
	for i, ev := range events {
		g, ok := at[ev.Project]
		if !ok {
			g = len(groups)
			at[ev.Project] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// projectKeys returns the epoch key of every project among events, once.
func projectKeys(events []Encoded) []string {
	var keys []string
	seen := map[string]bool{}
	for _, ev := range events {
		if !seen[ev.Project] {
			seen[ev.Project] = true
			keys = append(keys, EpochKey(ev.Project))
		}
	}
	return keys
}

// HistoryRequest is one syncgate_history_page call: the events of
// (Project, Collection) after the stream id SinceID of epoch SinceEpoch
// (both empty: the head only), at most MaxEvents of them and MaxBytes of
// their JSON (at least one when any follows).
type HistoryRequest struct {
	Project, Collection string
	SinceEpoch, SinceID string
	MaxEvents, MaxBytes int
}

// Entry is one history entry: its stream id and the event JSON as stored.
type Entry struct {
	ID, JSON string
}

// HistoryReply is syncgate_history_page's answer.
type HistoryReply struct {
	// Epoch is the project's epoch and Last the stream's newest id (or its
	// newest trimmed one when trimming emptied it, or 0-0).
	Epoch, Last string
	// Recovered is true when Entries hold every event after since (up to
	// More); false when since is of another epoch, trimmed, or ahead.
	Recovered bool
	// More is true when entries after the last of Entries remain.
	More    bool
	Entries []Entry
}

// History calls syncgate_history_page. A missing library is installed with
// load and the call retried once. Errors are classified (Classify).
func History(ctx context.Context, rdb redis.Cmdable, req HistoryRequest, load Loader) (HistoryReply, error) {
	keys := []string{EpochKey(req.Project)}
	var res []any
	for attempt := 0; ; attempt++ {
		var err error
		res, err = rdb.FCall(ctx, "syncgate_history_page", keys, req.Collection, req.SinceEpoch, req.SinceID, req.MaxEvents, req.MaxBytes).Slice()
		if err == nil {
			break
		}
		if attempt == 0 && load != nil && IsFunctionMissing(err) {
			// A Redis that restarted empty, or a library of version 2
			// (a gateway from before paged history installed it).
			if lerr := load(ctx); lerr != nil {
				return HistoryReply{}, lerr
			}
			continue
		}
		return HistoryReply{}, Classify("syncgate_history_page", err)
	}
	if len(res) < 4 || len(res)%2 != 0 {
		return HistoryReply{}, fmt.Errorf("syncgate_history_page: unexpected reply of %d elements", len(res))
	}
	var h HistoryReply
	h.Epoch, _ = res[0].(string)
	h.Last, _ = res[1].(string)
	rec, _ := res[2].(int64)
	more, _ := res[3].(int64)
	h.Recovered, h.More = rec == 1, more == 1
	if n := (len(res) - 4) / 2; n > 0 {
		h.Entries = make([]Entry, 0, n)
	}
	for i := 4; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		raw, _ := res[i+1].(string)
		h.Entries = append(h.Entries, Entry{ID: id, JSON: raw})
	}
	return h, nil
}
