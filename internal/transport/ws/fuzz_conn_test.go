package ws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/transport/ws"
	"github.com/syncgate/syncgate/internal/wstest"
)

// FuzzConnection drives the whole /v1/ws connection handler over a real
// socket: a token signed with the test secret carrying arbitrary claims
// (sent on the upgrade or as the first message), a subscribe with an
// arbitrary since, then arbitrary frames (one per line; a line starting
// with 0x00 goes as a binary frame). After each input the node must still
// answer, must have recovered no panic, and must have released the
// connection and its subscriptions; TestMain's goleak then checks that
// every goroutine exited.
func FuzzConnection(f *testing.F) {
	n := wstest.StartNode(f, wstest.NodeConfig{Hub: hub.Config{MaxMessageBytes: 8 << 10, AuthTimeout: time.Second}})
	var history []string
	for i := range 5 {
		history = append(history, n.Publish(f, wstest.Doc("p1", "c", i))...)
	}
	exp := strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
	valid := `{"sub":"u1","exp":` + exp + `,"projects":["p1"]}`
	for _, s := range []struct {
		claims, since, frames string
		header                bool
	}{
		{valid, "", `{"op":"ping","id":1}`, true},
		{valid, history[1], "{\"op\":\"unsubscribe\",\"id\":\"u\",\"project\":\"p1\",\"collection\":\"c\"}\n{\"op\":\"subscribe\",\"id\":2,\"project\":\"p1\",\"collection\":\"*\"}", false},
		{`{"sub":"u1","exp":` + exp + `000,"projects":["p1"]}`, "", `{"op":"ping"}`, true},
		{`{"sub":"u1","exp":"` + exp + `","projects":["p1"]}`, "", "", false},
		{`{"sub":"u1","exp":` + exp + `,"projects":["*"],"collections":[],"roles":["a"]}`, "x:1-0", "{\"op\":\"auth\",\"token\":\"t\"}\n\x00binary", true},
		{valid, "00000000:0-0", `{"op":"subscribe","id":"s","project":"p1","collection":"c","since":"` + history[0] + `"}`, true},
		{`{"sub":"","exp":1}`, "", "{", false},
		{valid, "", "{\"op\":\"dance\"}\n[1]\n{\"op\":\"subscribe\",\"id\":{},\"project\":\"p1\"}", false},
	} {
		f.Add(s.claims, s.since, s.frames, s.header)
	}
	f.Fuzz(func(t *testing.T, claims, since, frames string, header bool) {
		if len(claims) > 4<<10 || len(frames) > 32<<10 {
			return
		}
		tok := wstest.FuzzToken(t, claims)
		ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
		defer cancel()
		h := http.Header{}
		if header {
			h.Set("Authorization", "Bearer "+tok)
		}
		ws, _, err := websocket.Dial(ctx, n.WSURL(), &websocket.DialOptions{Subprotocols: []string{ws.Subprotocol}, HTTPHeader: h})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		send := func(typ websocket.MessageType, b []byte) bool {
			return ws.Write(ctx, typ, b) == nil // the server may close at any point
		}
		ok := true
		if !header {
			b, _ := json.Marshal(map[string]string{"op": "auth", "token": tok})
			ok = send(websocket.MessageText, b)
		}
		sub, _ := json.Marshal(map[string]string{"op": "subscribe", "id": "f", "project": "p1", "collection": "c", "since": since})
		ok = ok && send(websocket.MessageText, sub)
		ok = ok && wstest.SendLines(ctx, ws, frames, 32)
		if ok && send(websocket.MessageText, []byte(`{"op":"ping","id":"end"}`)) {
			// Read to the pong (served) or the close (refused, or a
			// frame that ends the connection); every frame is JSON.
			wstest.ReadUntil(t, ctx, ws, func(data []byte) bool {
				if !json.Valid(data) {
					t.Fatalf("server frame is not JSON: %.100q", data)
				}
				return bytes.Contains(data, []byte(`"op":"pong","id":"end"`))
			})
		}
		ws.CloseNow()
		n.AwaitReleased(t, n.Hub.Connections)
	})
}
