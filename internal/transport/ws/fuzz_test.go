package ws

import (
	"errors"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		in string
		op string
		ok bool
	}{
		{`{"op":"ping"}`, "ping", true},
		{`{"op":"subscribe","id":12,"project":"p","collection":"c","since":"e:1-0","extra":true}`, "subscribe", true},
		{`{"op":"auth","id":null,"token":"t"}`, "auth", true},
		{`{"op":"ping","id":true}`, "ping", false},
		{`{"op":"ping","id":[1]}`, "ping", false},
		{`{"op":"nope"}`, "nope", false},
		{`{"op":5}`, "", false},
		{`null`, "", false},
		{``, "", false},
	}
	for _, tt := range tests {
		r, err := decodeRequest([]byte(tt.in))
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, errBadRequest)) {
			t.Errorf("decodeRequest(%s) error %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err == nil && r.Op != tt.op {
			t.Errorf("decodeRequest(%s) op %q, want %q", tt.in, r.Op, tt.op)
		}
	}
}

// FuzzDecodeRequest checks the client-message decoder never panics and that
// an accepted message has a known op and an id that can be echoed.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"auth","token":"x"}`, `{"op":"subscribe","id":"1","project":"p","collection":"*","since":"m1:2-0"}`,
		`{"op":"unsubscribe","id":1e9}`, `{"op":"ping","id":-1}`, `{"op":"ping","id":"\ud800"}`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRequest(data)
		if err != nil {
			return
		}
		switch r.Op {
		case opAuth, opSubscribe, opUnsubscribe, opPing:
		default:
			t.Fatalf("accepted unknown op %q", r.Op)
		}
		if len(r.ID) > 128 {
			t.Fatalf("accepted id of %d bytes", len(r.ID))
		}
		if r.ID != nil {
			encodeFrame(pongFrame{Op: "pong", ID: r.ID}) // must not panic
		}
	})
}
