// Package testlog holds what tests use to read what a logger or a child
// process wrote while other goroutines still write.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that several goroutines may write and the test
// read at once. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
