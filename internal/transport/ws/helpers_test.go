package ws_test

import (
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/auth"
)

func signWith(secret []byte, user string) (string, error) {
	return auth.SignHS256(secret, auth.Claims{Subject: user, ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"p1"}})
}

func websocketCode(err error) websocket.StatusCode { return websocket.CloseStatus(err) }
