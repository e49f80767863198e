// Package transporttest holds what the transports' adapter tests share: a
// socket that records what an adapter writes over the real engine.
package transporttest

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// Recorder is a transport's socket that records what the adapter writes
// and how it ends, without a network: a transport adapter over the real
// engine. The zero value is ready to use.
type Recorder struct {
	mu      sync.Mutex
	msgs    []string
	code    int
	changed chan struct{}
}

// Write records msg.
func (r *Recorder) Write(msg []byte, _ <-chan struct{}) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, string(msg))
	r.mu.Unlock()
	r.signal()
	return nil
}

// Flush does nothing: every Write is recorded at once.
func (r *Recorder) Flush() error { return nil }

// End records the close code.
func (r *Recorder) End(code int, _ string) {
	r.mu.Lock()
	r.code = code
	r.mu.Unlock()
	r.signal()
}

func (r *Recorder) signal() {
	r.mu.Lock()
	if r.changed == nil {
		r.changed = make(chan struct{}, 1)
	}
	ch := r.changed
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Wait bounds every Await.
var Wait = 10 * time.Second

// Await waits (up to Wait) until cond holds for the messages so far and
// the close code (0 while open), and returns the messages.
func (r *Recorder) Await(t testing.TB, what string, cond func(msgs []string, code int) bool) []string {
	t.Helper()
	deadline := time.After(Wait)
	for {
		r.mu.Lock()
		if r.changed == nil {
			r.changed = make(chan struct{}, 1)
		}
		msgs, code, ch := append([]string(nil), r.msgs...), r.code, r.changed
		r.mu.Unlock()
		if cond(msgs, code) {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s: %d messages %.300q, code %d", what, len(msgs), msgs, code)
		}
	}
}

// Next waits for a message containing want after the first n and returns
// it with the count of messages up to it.
func (r *Recorder) Next(t testing.TB, n int, want string) (string, int) {
	t.Helper()
	var msg string
	r.Await(t, "a message with "+want, func(msgs []string, _ int) bool {
		for i := n; i < len(msgs); i++ {
			if strings.Contains(msgs[i], want) {
				msg, n = msgs[i], i+1
				return true
			}
		}
		return false
	})
	return msg, n
}
