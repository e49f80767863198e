package main

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

// TestSSEStreamNext parses an event stream as EventSource would: comments
// and ids skipped, data lines joined, CRLF and lines longer than the
// read buffer handled, a message without data not dispatched.
func TestSSEStreamNext(t *testing.T) {
	long := strings.Repeat("x", 10000)
	stream := ": keep-alive\n\n" +
		"id: c1\nevent: subscribed\ndata: {\"op\":\"subscribed\"}\n\n" +
		"event: nothing\n\n" +
		"event: events\r\ndata: a\r\ndata: b\r\n\r\n" +
		"data: " + long + "\n\n" +
		"event: events\ndata: cut"
	s := &sseStream{rd: bufio.NewReaderSize(strings.NewReader(stream), 16)}
	for _, want := range []struct{ event, data string }{
		{"subscribed", `{"op":"subscribed"}`},
		{"events", "a\nb"},
		{"message", long},
	} {
		event, data, err := s.next(nil)
		if err != nil || event != want.event || string(data) != want.data {
			t.Fatalf("got %q %.40q %v, want %q %.40q", event, data, err, want.event, want.data)
		}
	}
	if _, _, err := s.next(nil); err != io.EOF {
		t.Fatalf("an unfinished message at the end: %v, want EOF", err)
	}
}
