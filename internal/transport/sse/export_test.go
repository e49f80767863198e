package sse

// Test hooks into the unexported encoder.

type Encoder = encoder

var NewEncoder = newEncoder

func (e *encoder) Subscribed(i int, head string, recovered bool) { e.subscribed(i, head, recovered) }
func (e *encoder) Events(i int, frame []byte, last string)       { e.events(i, frame, last) }
func (e *encoder) Fail(code, message string)                     { e.fail(code, message) }
func (e *encoder) Comment(text string)                           { e.comment(text) }
func (e *encoder) Take() []byte                                  { return e.take() }

func (e *encoder) Retry(ms int) { e.retry(ms) }
