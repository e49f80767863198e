package hub

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

// An Encoding names how a subscription's events are encoded: the engine
// encodes each event once per node per encoding in use, and every
// subscriber of that encoding shares the bytes.
type Encoding uint8

// JSON is the event's JSON object, offset included: what /v1/ws and
// /v1/sse carry inside their `events` frames.
const JSON Encoding = 0

// maxEncodings bounds the encodings a process registers (JSON and
// Socket.IO's two, one spare), so a Message holds them in place.
const maxEncodings = 4

// encoders are the registered encodings by index; written only during
// package initialization (NewEncoding), read-only afterwards.
var encoders = []func(*syncgate.Event) ([]byte, error){
	func(ev *syncgate.Event) ([]byte, error) { return json.Marshal(ev) },
}

// NewEncoding registers an encoding of events. Call it only to initialize a
// package-level variable (the registry is not locked); at most
// maxEncodings-1 may be registered, and one more panics at start-up.
func NewEncoding(encode func(*syncgate.Event) ([]byte, error)) Encoding {
	if len(encoders) >= maxEncodings {
		panic("hub: too many encodings registered")
	}
	encoders = append(encoders, encode)
	return Encoding(len(encoders) - 1)
}

// Message is one event as the engine queues it: its offset, audience and
// publish time, and its bytes in each encoding a subscriber needs. It is
// shared by every session and never changed once queued.
type Message struct {
	off  backplane.Offset
	aud  *syncgate.Audience
	ts   time.Time
	data [maxEncodings][]byte
}

// Data is the event's bytes in encoding e.
func (m *Message) Data(e Encoding) []byte { return m.data[e] }

// Offset is the event's offset in the subscription's stream.
func (m *Message) Offset() backplane.Offset { return m.off }

// Published is the event's publish timestamp (zero when it has none).
func (m *Message) Published() time.Time { return m.ts }

// newMessage parses ev's offset; no encoding is made yet.
func newMessage(ev *syncgate.Event) (*Message, error) {
	off, err := backplane.ParseOffset(ev.Offset)
	if err != nil {
		return nil, err
	}
	return &Message{off: off, aud: ev.Audience, ts: ev.Timestamp}, nil
}

// encode makes m's bytes in e unless it has them. Only the goroutine that
// made m calls it, before m is queued anywhere.
func (m *Message) encode(ev *syncgate.Event, e Encoding) error {
	if m.data[e] != nil {
		return nil
	}
	b, err := encoders[e](ev)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	m.data[e] = b
	return nil
}

// encodeReplay encodes a page of history in e (the events are shared with
// other readers of the page and left unchanged). An event that cannot be
// encoded is skipped and counted, as it is live. It returns the messages
// and their queue size with overhead per message.
func (h *Hub) encodeReplay(events []syncgate.Event, e Encoding, overhead int) ([]*Message, int) {
	replay := make([]*Message, 0, len(events))
	size := 0
	for i := range events {
		m, err := newMessage(&events[i])
		if err == nil {
			err = m.encode(&events[i], e)
		}
		if err != nil {
			h.log.Warn("skipping undeliverable event from history", "err", err)
			h.dropped(dropInvalid)
			continue
		}
		replay = append(replay, m)
		size += len(m.data[e]) + overhead
	}
	return replay, size
}
