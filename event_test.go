package syncgate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/syncgate/syncgate"
)

func TestValidate(t *testing.T) {
	ok := func() syncgate.Event {
		return syncgate.Event{Type: "document:updated", Project: "p-1_A", Collection: "users.v2", Document: json.RawMessage(`{"a":1}`)}
	}
	tests := []struct {
		name   string
		mutate func(*syncgate.Event)
		errHas string
	}{
		{"valid", func(*syncgate.Event) {}, ""},
		{"database type", func(e *syncgate.Event) { e.Type = "alter_column" }, ""},
		{"no type", func(e *syncgate.Event) { e.Type = "" }, `type ""`},
		{"upper type", func(e *syncgate.Event) { e.Type = "Insert" }, `type "Insert"`},
		{"long type", func(e *syncgate.Event) { e.Type = strings.Repeat("a", 65) }, "type"},
		{"no project", func(e *syncgate.Event) { e.Project = "" }, `project ""`},
		{"project with dot", func(e *syncgate.Event) { e.Project = "a.b" }, `project "a.b"`},
		{"project 65", func(e *syncgate.Event) { e.Project = strings.Repeat("p", 65) }, "project"},
		{"collection 128", func(e *syncgate.Event) { e.Collection = strings.Repeat("c", 128) }, ""},
		{"collection 129", func(e *syncgate.Event) { e.Collection = strings.Repeat("c", 129) }, "collection"},
		{"collection wildcard", func(e *syncgate.Event) { e.Collection = "*" }, `collection "*"`},
		{"collection slash", func(e *syncgate.Event) { e.Collection = "a/b" }, `collection "a/b"`},
		{"bad document", func(e *syncgate.Event) { e.Document = json.RawMessage(`{`) }, "document is not valid JSON"},
		{"empty audience", func(e *syncgate.Event) { e.Audience = &syncgate.Audience{} }, "audience"},
		{"offset", func(e *syncgate.Event) { e.Offset = "x:1-0" }, "offset"},
		{"long id", func(e *syncgate.Event) { e.DocumentID = strings.Repeat("i", 257) }, "documentId"},
		{"id not UTF-8", func(e *syncgate.Event) { e.DocumentID = "d\xff" }, "documentId is not valid UTF-8"},
		{"actor not UTF-8", func(e *syncgate.Event) { e.Actor = "\xc3(" }, "actor is not valid UTF-8"},
		{"document not UTF-8", func(e *syncgate.Event) { e.Document = json.RawMessage("\"\xff\"") }, "document is not valid UTF-8"},
		{"audience not UTF-8", func(e *syncgate.Event) { e.Audience = &syncgate.Audience{Roles: []string{"a\xff"}} }, "audience names"},
		{"non-ASCII id", func(e *syncgate.Event) { e.DocumentID = "日本-é" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok()
			tt.mutate(&e)
			err := e.Validate()
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, syncgate.ErrInvalidEvent) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error %v, want one containing %q", err, tt.errHas)
			}
		})
	}
}

func TestAudienceAllows(t *testing.T) {
	var none *syncgate.Audience
	a := &syncgate.Audience{Users: []string{"u1"}, Roles: []string{"admin"}}
	tests := []struct {
		a     *syncgate.Audience
		user  string
		roles []string
		want  bool
	}{
		{none, "x", nil, true},
		{a, "u1", nil, true},
		{a, "u2", []string{"viewer", "admin"}, true},
		{a, "u2", []string{"viewer"}, false},
		{a, "", nil, false},
	}
	for _, tt := range tests {
		if got := tt.a.Allows(tt.user, tt.roles); got != tt.want {
			t.Errorf("%+v.Allows(%q, %v) = %v", tt.a, tt.user, tt.roles, got)
		}
	}
}

func TestDecodeEventStrict(t *testing.T) {
	for _, in := range []string{`{"type":"a","project":"p","collection":"c","extra":1}`, `{"type":"a","project":"p","collection":"c","documentID":"x"}`, `{"TYPE":"a"}`, `null`, `{"type":"a"} {}`, `[]`, `{"type":1}`} {
		if _, err := syncgate.DecodeEvent([]byte(in)); !errors.Is(err, syncgate.ErrInvalidEvent) {
			t.Errorf("DecodeEvent(%s) = %v, want ErrInvalidEvent", in, err)
		}
	}
}

// TestDecodeEventRefusesAmbiguity covers what encoding/json alone resolves
// silently: duplicate fields (the last one wins), unknown audience fields
// (ignored), and invalid UTF-8 or unpaired surrogates (replaced by U+FFFD).
func TestDecodeEventRefusesAmbiguity(t *testing.T) {
	const head = `"type":"insert","collection":"c"`
	tests := []struct {
		name, in, errHas string
	}{
		{"duplicate project", `{` + head + `,"project":"pub","documentId":"d","project":"other"}`, `duplicate field "project"`},
		{"duplicate document", `{` + head + `,"project":"p","document":1,"document":2}`, `duplicate field "document"`},
		{"duplicate audience users", `{` + head + `,"project":"p","audience":{"users":["a"],"users":["b"]}}`, `duplicate field "users" in audience`},
		{"unknown audience field", `{` + head + `,"project":"p","audience":{"users":["a"],"groups":["g"]}}`, `audience has unknown field "groups"`},
		{"audience field in the wrong case", `{` + head + `,"project":"p","audience":{"Users":["a"]}}`, `audience has unknown field "Users"`},
		{"audience not an object", `{` + head + `,"project":"p","audience":["a"]}`, "audience is not a JSON object"},
		{"invalid UTF-8 in documentId", `{` + head + `,"project":"p","documentId":"d\xff"}`, "documentId is not valid UTF-8"},
		{"invalid UTF-8 in actor", `{` + head + `,"project":"p","actor":"\xc3("}`, "actor is not valid UTF-8"},
		{"invalid UTF-8 in document", `{` + head + `,"project":"p","document":{"t":"\xed\xa0\x80"}}`, "document is not valid UTF-8"},
		{"invalid UTF-8 in audience", `{` + head + `,"project":"p","audience":{"users":["\xff"]}}`, "audience is not valid UTF-8"},
		{"lone high surrogate", `{` + head + `,"project":"p","documentId":"a\\ud800b"}`, "documentId: an unpaired UTF-16 surrogate"},
		{"lone low surrogate", `{` + head + `,"project":"p","actor":"\\udc00"}`, "actor: an unpaired UTF-16 surrogate"},
		{"high surrogate then non-surrogate", `{` + head + `,"project":"p","documentId":"\\ud800\\u0041"}`, "unpaired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := unescapeBytes(t, tt.in)
			_, err := syncgate.DecodeEvent(in)
			if !errors.Is(err, syncgate.ErrInvalidEvent) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("DecodeEvent(%q) = %v, want an error containing %q", in, err, tt.errHas)
			}
		})
	}
	// What stays accepted: a surrogate pair, an escaped backslash before a
	// u, non-ASCII text, a null audience, duplicate keys inside a document
	// (its content is the publisher's, passed through verbatim).
	for _, in := range []string{
		`{` + head + `,"project":"p","documentId":"\\ud83d\\ude00 é"}`,
		`{` + head + `,"project":"p","actor":"\\\\ud800"}`,
		`{` + head + `,"project":"p","audience":null}`,
		`{` + head + `,"project":"p","document":{"a":1,"a":2}}`,
	} {
		if _, err := syncgate.DecodeEvent(unescapeBytes(t, in)); err != nil {
			t.Errorf("DecodeEvent(%s) = %v, want it accepted", in, err)
		}
	}
}

// unescapeBytes turns the \xNN and \\ escapes of a test table into bytes,
// so tables can hold invalid UTF-8 legibly.
func unescapeBytes(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], `\\`):
			out = append(out, '\\')
			i++
		case strings.HasPrefix(s[i:], `\x`):
			var b byte
			if _, err := fmt.Sscanf(s[i+2:i+4], "%02x", &b); err != nil {
				t.Fatalf("bad escape in %q", s)
			}
			out = append(out, b)
			i += 3
		default:
			out = append(out, s[i])
		}
	}
	return out
}

// FuzzEvent checks that decoding and validating never panic, and that an
// event that passes survives an encode/decode round trip still valid.
func FuzzEvent(f *testing.F) {
	f.Add([]byte(`{"type":"document:updated","project":"p1","collection":"events","documentId":"e","document":{"t":"L"},"audience":{"users":["u"]}}`))
	f.Add([]byte(`{"type":"insert","project":"p","collection":"c","timestamp":"2026-11-22T10:00:00.123Z"}`))
	f.Add([]byte(`{"type":"","project":"\u0000","collection":"*"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := syncgate.DecodeEvent(data)
		if err != nil {
			return
		}
		if ev.Validate() != nil {
			return
		}
		enc, err := ev.Encode()
		if err != nil {
			return // over the size limit
		}
		back, err := syncgate.DecodeEvent(enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("valid event %s invalid after round trip: %v", enc, err)
		}
	})
}
