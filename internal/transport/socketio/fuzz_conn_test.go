package socketio_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/wstest"
)

// FuzzConnection drives the whole /socket.io/ connection handler over a
// real socket: a token signed with the test secret carrying arbitrary
// claims (in the CONNECT payload or on the upgrade), a recovery offset
// (the Socket.IO form of since) and pid in that CONNECT, then arbitrary
// frames (one per line; a line starting with 0x00 goes as a binary frame).
// After each input the node must still answer an Engine.IO ping, must have
// recovered no panic, and must have released the connection and its
// subscriptions; TestMain's goleak then checks that every goroutine exited.
func FuzzConnection(f *testing.F) {
	n := startNode(f, nil, func(c *nodeConfig) { c.MaxMessageBytes = 8 << 10; c.AuthTimeout = time.Second })
	var offs []string
	for i := range 5 {
		offs = append(offs, n.Publish(f, wstest.Doc("p1", "c", i))...)
	}
	o0, _ := backplane.ParseOffset(offs[0])
	exp := strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
	valid := `{"sub":"u1","exp":` + exp + `,"projects":["p1"]}`
	state := "sg1|sp1/c@" + o0.String() + "|jp1/*@" + o0.String()
	for _, s := range []struct {
		claims, offset, frames string
		header                 bool
	}{
		{valid, "", `42["subscribe",{"project":"p1","collection":"c"}]`, false},
		{valid, state, "421[\"join-project\",\"p1\"]\n42[\"leave-project\",{\"projectId\":\"p1\"}]", false},
		{valid, state, `42["auth",{"token":"x"}]`, true},
		{`{"sub":"u1","exp":` + exp + `000,"projects":["p1"]}`, "", "", false},
		{`{"sub":"u1","exp":"` + exp + `","projects":["p1"]}`, "", "40", true},
		{valid, "sg1|x", "451-[\"x\"]\n\x00bin\n41", false},
		{`{"sub":"u1","exp":` + exp + `,"projects":["*"],"collections":["c"],"roles":["r"]}`, "sg1|sp1/*@0-0", "9\n42[]\n2", false},
	} {
		f.Add(s.claims, s.offset, s.frames, s.header)
	}
	f.Fuzz(func(t *testing.T, claims, offset, frames string, header bool) {
		if len(claims) > 4<<10 || len(offset) > 4<<10 || len(frames) > 32<<10 {
			return
		}
		tok := wstest.FuzzToken(t, claims)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		h := http.Header{}
		if header {
			h.Set("Authorization", "Bearer "+tok)
		}
		ws, _, err := websocket.Dial(ctx, n.sioURL(""), &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		send := func(typ websocket.MessageType, b []byte) bool {
			return ws.Write(ctx, typ, b) == nil // the server may close at any point
		}
		a := map[string]string{"pid": "fuzz", "offset": offset}
		if !header {
			a["token"] = tok
		}
		connect, _ := json.Marshal(a)
		ok := send(websocket.MessageText, append([]byte("40"), connect...))
		ok = ok && wstest.SendLines(ctx, ws, frames, 32)
		if ok && send(websocket.MessageText, []byte("2end")) { // to the pong (served) or the close
			wstest.ReadUntil(t, ctx, ws, func(data []byte) bool { return string(data) == "3end" })
		}
		ws.CloseNow()
		n.AwaitReleased(t, n.Hub.Connections)
	})
}
