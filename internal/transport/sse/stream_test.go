package sse_test

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/transport/sse"
)

type subscribedMsg struct {
	Op, Project, Collection, Offset string
	Recovered                       bool
}

// TestEncoderCursor walks a stream through subscribed, replay, live and
// reset messages and checks after each that the id resumes every
// subscription from where that message left it.
func TestEncoderCursor(t *testing.T) {
	legacy := "m3fa1:5-0" // an untagged offset of an older gateway
	subs := []sse.Subscription{{Stream: todos, Since: off(todos, 2)}, {Stream: all}, {Stream: users, Since: legacy}}
	e := sse.NewEncoder(subs)
	type want map[backplane.Stream]string // position per stream; absent: none
	steps := []struct {
		name string
		do   func()
		want want
	}{
		{"todos resumes: its since stays", func() { e.Subscribed(0, off(todos, 9), true) },
			want{todos: off(todos, 2), users: legacy}},
		{"all is new: its head", func() { e.Subscribed(1, off(all, 30), true) },
			want{todos: off(todos, 2), all: off(all, 30), users: legacy}},
		{"users cannot resume: its head", func() { e.Subscribed(2, off(users, 40), false) },
			want{todos: off(todos, 2), all: off(all, 30), users: off(users, 40)}},
		{"replay of todos", func() { e.Events(0, off(todos, 5), []byte(`{}`)) },
			want{todos: off(todos, 5), all: off(all, 30), users: off(users, 40)}},
		{"live on all", func() { e.Events(1, off(all, 31), []byte(`{}`)) },
			want{todos: off(todos, 5), all: off(all, 31), users: off(users, 40)}},
		{"epoch change on todos", func() { e.Subscribed(0, "n77:0-0", false) },
			want{todos: "n77:0-0", all: off(all, 31), users: off(users, 40)}},
	}
	for _, st := range steps {
		st.do()
		out := string(e.Take())
		m, err := newSSEReader(strings.NewReader(out)).next()
		if err != nil || !m.HasID {
			t.Fatalf("%s: %q: no message with an id (%v)", st.name, out, err)
		}
		c, err := sse.ParseCursor(m.ID, 100)
		if err != nil {
			t.Fatalf("%s: ParseCursor(%q): %v", st.name, m.ID, err)
		}
		if len(c) != len(st.want) {
			t.Errorf("%s: cursor %q holds %d positions, want %d", st.name, m.ID, len(c), len(st.want))
		}
		for s, w := range st.want {
			if got, ok := c.Since(s); !ok || got != w {
				t.Errorf("%s: cursor %q: %s at %q, want %q", st.name, m.ID, s, got, w)
			}
		}
	}
}

func TestEncoderMessages(t *testing.T) {
	subs := []sse.Subscription{{Stream: todos}}
	e := sse.NewEncoder(subs)
	e.Subscribed(0, off(todos, 1), true)
	ev1, ev2 := `{"offset":"`+off(todos, 2)+`"}`, `{"offset":"`+off(todos, 3)+`"}`
	frame := `{"op":"events","project":"demo","collection":"todos","events":[` + ev1 + `,` + ev2 + `]}`
	e.Events(0, off(todos, 3), []byte(ev1), []byte(ev2))
	e.Comment("keep-alive\nnot a field")
	e.Events(0, off(todos, 4), []byte("{\"a\":\r\n1,\r\"b\":\n2}")) // line breaks in data
	e.Fail("unauthorized", "token expired")
	r := newSSEReader(strings.NewReader(string(e.Take())))

	m, err := r.next()
	var sub subscribedMsg
	if err != nil || m.Event != "subscribed" || json.Unmarshal([]byte(m.Data), &sub) != nil {
		t.Fatalf("first message %+v (%v)", m, err)
	}
	if (sub != subscribedMsg{Op: "subscribed", Project: "demo", Collection: "todos", Offset: off(todos, 1), Recovered: true}) {
		t.Errorf("subscribed data %+v", sub)
	}
	if strings.Contains(m.Data, `"id"`) {
		t.Errorf("subscribed data %s carries a request id", m.Data)
	}
	if m, err = r.next(); err != nil || m.Event != "events" || m.Data != frame || !m.HasID {
		t.Fatalf("events message %+v (%v)", m, err)
	}
	if m, err = r.next(); err != nil || m.Event != "events" || !m.HasID {
		t.Fatalf("events message %+v (%v)", m, err)
	}
	var v struct{ Events []struct{ A, B int } }
	if err := json.Unmarshal([]byte(m.Data), &v); err != nil || len(v.Events) != 1 || v.Events[0].A != 1 || v.Events[0].B != 2 {
		t.Errorf("data with line breaks read back as %q (%v)", m.Data, err)
	}
	if r.comments != 1 {
		t.Errorf("%d comments, want 1", r.comments)
	}
	id := m.ID
	if m, err = r.next(); err != nil || m.Event != "error" || m.HasID || m.ID != id {
		t.Fatalf("error message %+v (%v): it must not move the id", m, err)
	}
	var ed struct{ Op, Code, Message string }
	if json.Unmarshal([]byte(m.Data), &ed) != nil || ed.Op != "error" || ed.Code != "unauthorized" || ed.Message != "token expired" {
		t.Errorf("error data %s", m.Data)
	}
	if _, err := r.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last message: %v", err)
	}
}

func TestParseCursor(t *testing.T) {
	tag := backplane.StreamTag(todos)
	tests := []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{"empty", "1.", map[string]string{}, ""},
		{"elided tag", "1." + tag + "~m3fa1:7-0", map[string]string{tag: off(todos, 7)}, ""},
		{"verbatim", "1." + tag + "!m3fa1:7-0", map[string]string{tag: "m3fa1:7-0"}, ""},
		{"no version", tag + "~m3fa1:7-0", nil, "is not a cursor of this gateway"},
		{"other version", "2." + tag + "~m3fa1:7-0", nil, "is not a cursor of this gateway"},
		{"bad tag", "1.XYZ~m3fa1:7-0", nil, "does not start with a stream tag"},
		{"bad separator", "1." + tag + "?m3fa1:7-0", nil, "followed by '~' or '!'"},
		{"bad offset", "1." + tag + "~m3fa1:7", nil, "bad offset"},
		{"tag in elided", "1." + tag + "~m3t0123456789ab:7-0", nil, "bad offset"},
		{"twice", "1." + tag + "~m3fa1:7-0," + tag + "!m3fa1:8-0", nil, "appears twice"},
		{"too many", "1.aaaaaaaaaaaa~m:1-0,bbbbbbbbbbbb~m:1-0,cccccccccccc~m:1-0", nil, "more than 2 positions"},
		{"too long", "1." + strings.Repeat("a", sse.MaxCursorBytes), nil, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := sse.ParseCursor(tt.in, 2)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "bad Last-Event-ID") {
					t.Fatalf("got %v, %v; want an error containing %q", c, err, tt.err)
				}
				return
			}
			if err != nil || len(c) != len(tt.want) {
				t.Fatalf("got %v, %v; want %v", c, err, tt.want)
			}
			for k, v := range tt.want {
				if c[k] != v {
					t.Errorf("%s: %q, want %q", k, c[k], v)
				}
			}
		})
	}
}

// FuzzParseCursor: whatever a client sends as Last-Event-ID, parsing
// neither panics nor accepts a position that is not an offset.
func FuzzParseCursor(f *testing.F) {
	f.Add("1." + backplane.StreamTag(todos) + "~m3fa1:7-0")
	f.Add("1.aaaaaaaaaaaa!x:1-0,")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := sse.ParseCursor(s, 100)
		if err != nil {
			return
		}
		for tag, o := range c {
			if _, err := backplane.ParseOffset(o); err != nil || len(tag) != 12 {
				t.Fatalf("accepted %q: %s -> %q", s, tag, o)
			}
		}
	})
}
