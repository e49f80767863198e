package sse

// Test hooks into the unexported encoder.

type Encoder = encoder

var NewEncoder = newEncoder

func (e *encoder) Subscribed(i int, head string, recovered bool) {
	e.subscribed(i, head, recovered, encodeSubscribed(e.subs[i], head, recovered))
}

// Events appends one events message of subscription i with the given
// events' JSON, the last at offset last.
func (e *encoder) Events(i int, last string, events ...[]byte) {
	e.startEvents(eventsHeader(e.subs[i]))
	for _, ev := range events {
		e.addEvent(ev)
	}
	e.endEvents(i, last)
}

func (e *encoder) Fail(code, message string) { e.fail(code, message) }
func (e *encoder) Comment(text string)       { e.comment(text) }
func (e *encoder) Retry(ms int64)            { e.retry(ms) }
func (e *encoder) Take() []byte              { return e.take() }
