package socketio

import (
	"errors"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/backplane"
)

func TestDecodePacket(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		typ  byte
		nsp  string
		id   int64
		data string
		att  int
	}{
		{`0`, true, '0', "/", -1, "", 0},
		{`0{"token":"t"}`, true, '0', "/", -1, `{"token":"t"}`, 0},
		{`0/admin,{"token":"t"}`, true, '0', "/admin", -1, `{"token":"t"}`, 0},
		{`0/admin`, true, '0', "/admin", -1, "", 0},
		{`1`, true, '1', "/", -1, "", 0},
		{`2["join-project","p1"]`, true, '2', "/", -1, `["join-project","p1"]`, 0},
		{`212["subscribe",{}]`, true, '2', "/", 12, `["subscribe",{}]`, 0},
		{`2/chat,7["x"]`, true, '2', "/chat", 7, `["x"]`, 0},
		{`31[{"ok":true}]`, true, '3', "/", 1, `[{"ok":true}]`, 0},
		{`52-["up",{"_placeholder":true,"num":0}]`, true, '5', "/", -1, `["up",{"_placeholder":true,"num":0}]`, 2},
		{`0"str"`, false, 0, "", 0, "", 0},
		{`2{"a":1}`, false, 0, "", 0, "", 0},
		{`2`, false, 0, "", 0, "", 0},
		{`2["x"`, false, 0, "", 0, "", 0},
		{`4{"message":"x"}`, false, 0, "", 0, "", 0},
		{`7`, false, 0, "", 0, "", 0},
		{``, false, 0, "", 0, "", 0},
		{`5["x"]`, false, 0, "", 0, "", 0},
		{`5999-["x"]`, false, 0, "", 0, "", 0},
		{`21234567890123456["x"]`, false, 0, "", 0, "", 0},
		{`2/` + strings.Repeat("n", 200) + `,["x"]`, false, 0, "", 0, "", 0},
	}
	for _, tt := range tests {
		p, err := decodePacket([]byte(tt.in))
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, errBadPacket) {
			t.Errorf("decodePacket(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err == nil && (p.Type != tt.typ || p.Namespace != tt.nsp || p.ID != tt.id || string(p.Data) != tt.data || p.Attachments != tt.att) {
			t.Errorf("decodePacket(%q) = %+v", tt.in, p)
		}
	}
}

func TestEventArgs(t *testing.T) {
	name, args, err := eventArgs([]byte(`["join-project","p1",{"x":1}]`))
	if err != nil || name != "join-project" || len(args) != 2 || string(args[0]) != `"p1"` {
		t.Fatalf("eventArgs: %q %s %v", name, args, err)
	}
	for _, bad := range []string{`[]`, `[1]`, `[""]`, `{}`, `[null]`} {
		if _, _, err := eventArgs([]byte(bad)); err == nil {
			t.Errorf("eventArgs(%s) accepted", bad)
		}
	}
}

func TestEncode(t *testing.T) {
	for got, want := range map[string]string{
		string(encodeEvent("joined-project", map[string]string{"projectId": "p"})): `42["joined-project",{"projectId":"p"}]`,
		string(encodeEventOpen("x", 1)):                                            `42["x",1`,
		string(encodeAck(7, map[string]bool{"ok": true})):                          `437[{"ok":true}]`,
		string(encodeConnect("s", "p")):                                            `40{"sid":"s","pid":"p"}`,
		string(encodeConnectError("/", "unauthorized", "no")):                      `44{"message":"no","data":{"code":"unauthorized","message":"no"}}`,
		string(encodeConnectError("/a", "not_found", "Invalid namespace")):         `44/a,{"message":"Invalid namespace","data":{"code":"not_found","message":"Invalid namespace"}}`,
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	offs := map[subKey]backplane.Offset{
		keyOf(kindProject, backplane.Stream{Project: "p1", Collection: "*"}):         {Epoch: "e1", Hi: 5},
		keyOf(kindCollection, backplane.Stream{Project: "p1", Collection: "*"}):      {Epoch: "e1", Hi: 6, Lo: 1},
		keyOf(kindCollection, backplane.Stream{Project: "p-2", Collection: "a.b_c"}): {Epoch: "r9", Hi: 1},
	}
	var keys []subKey
	for k := range offs {
		keys = append(keys, k)
	}
	sortKeys(keys)
	s := string(appendState(nil, keys, offs))
	if s != "sg1|sp-2/a.b_c@r9:1-0|jp1/*@e1:5-0|sp1/*@e1:6-1" {
		t.Fatalf("state %s", s)
	}
	got, err := decodeState(s, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("decodeState: %v %v", got, err)
	}
	for k, o := range offs {
		if got[k] != o {
			t.Errorf("%v: %v, want %v", k, got[k], o)
		}
	}
	if _, err := decodeState(s, 2); err == nil {
		t.Error("more entries than allowed were accepted")
	}
	for _, bad := range []string{"", "sg2", "sg1|", "sg1|xp/*@e:1-0", "sg1|jp/c@e:1-0", "sg1|sp@e:1-0",
		"sg1|sp/c", "sg1|sp/c@bad", "sg1|sp/c@e:1-0|sp/c@e:2-0", "sg1|s/c@e:1-0", "sg1|sp!/c@e:1-0"} {
		if _, err := decodeState(bad, 10); !errors.Is(err, errBadState) {
			t.Errorf("decodeState(%q) error %v", bad, err)
		}
	}
	if got, err := decodeState("sg1", 10); err != nil || len(got) != 0 {
		t.Errorf("empty state: %v %v", got, err)
	}
}

func sortKeys(keys []subKey) {
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if compareKeys(keys[j], keys[i]) < 0 {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
}

func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{`0{"token":"t","pid":"x","offset":"sg1"}`, `212["subscribe",{"project":"p","collection":"c"}]`,
		`0/admin,`, `52-["x",{"_placeholder":true,"num":0}]`, `31[]`, `1`, `2/a,9["x"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePacket(b)
		if err != nil {
			if !errors.Is(err, errBadPacket) {
				t.Fatalf("error %v does not wrap errBadPacket", err)
			}
			return
		}
		if p.Attachments > maxAttachments || p.ID < -1 || len(p.Namespace) > 128 {
			t.Fatalf("out of bounds: %+v", p)
		}
		if p.Type == sioEvent {
			_, _, _ = eventArgs(p.Data)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add("sg1|jp1/*@e1:5-0|sp1/*@e1:6-1")
	f.Add("sg1")
	f.Add("sg1|sp/c@e:1-0|sp/c@e:2-0")
	f.Fuzz(func(t *testing.T, s string) {
		subs, err := decodeState(s, 100)
		if err != nil {
			if !errors.Is(err, errBadState) {
				t.Fatalf("error %v does not wrap errBadState", err)
			}
			return
		}
		var keys []subKey
		for k := range subs {
			keys = append(keys, k)
		}
		sortKeys(keys)
		again, err := decodeState(string(appendState(nil, keys, subs)), 100)
		if err != nil || len(again) != len(subs) {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}
