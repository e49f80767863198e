package hub_test

import (
	"time"

	"github.com/syncgate/syncgate/internal/auth"
)

func signWith(secret []byte, user string) (string, error) {
	return auth.SignHS256(secret, auth.Claims{Subject: user, ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"p1"}})
}
