package sse_test

import (
	"bufio"
	"io"
	"strings"
)

// message is one dispatched event-stream message, as EventSource sees it.
type message struct {
	Event string
	ID    string // the last id: field seen so far (EventSource's lastEventId)
	HasID bool   // this message set the id
	Data  string
}

// sseReader parses text/event-stream as the HTML standard's algorithm
// does: lines end with CR, LF or CRLF; "field: value" with one optional
// space; data lines joined by LF; comments start with a colon.
type sseReader struct {
	r        *bufio.Reader
	lastID   string
	comments int
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReader(r)} }

func (s *sseReader) line() (string, error) {
	var b strings.Builder
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return b.String(), err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			if n, err := s.r.Peek(1); err == nil && n[0] == '\n' {
				_, _ = s.r.ReadByte()
			}
			return b.String(), nil
		}
		b.WriteByte(c)
	}
}

// next returns the next dispatched message.
func (s *sseReader) next() (message, error) {
	var m message
	var data []string
	for {
		l, err := s.line()
		if err != nil {
			return m, err
		}
		if l == "" {
			if data == nil {
				m = message{}
				continue
			}
			m.Data, m.ID = strings.Join(data, "\n"), s.lastID
			if m.Event == "" {
				m.Event = "message"
			}
			return m, nil
		}
		if l[0] == ':' {
			s.comments++
			continue
		}
		field, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			m.Event = value
		case "data":
			data = append(data, value)
		case "id":
			if !strings.Contains(value, "\x00") {
				s.lastID, m.HasID = value, true
			}
		}
	}
}
