package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/auth"
)

const tokenSecret = "token-test-secret-0123456789abcdef0123"

func TestTokenCommand(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(tokenSecret)})
	if err != nil {
		t.Fatal(err)
	}
	withSecret := env(map[string]string{"SYNCGATE_JWT_SECRET": tokenSecret})
	tests := []struct {
		name   string
		args   []string
		getenv func(string) string
		want   string // error substring; "" for a token
		check  func(*auth.Claims) bool
	}{
		{"full", []string{"--sub", "alice", "--projects", "p1,p2", "--collections", "a,b", "--roles", "admin", "--ttl", "2h"}, withSecret, "",
			func(c *auth.Claims) bool {
				return c.Subject == "alice" && slices.Equal(c.Projects, []string{"p1", "p2"}) && slices.Equal(c.Collections, []string{"a", "b"}) &&
					slices.Equal(c.Roles, []string{"admin"}) && c.ExpiresAt.After(time.Now().Add(110*time.Minute)) && c.ExpiresAt.Before(time.Now().Add(121*time.Minute))
			}},
		{"defaults", []string{"--sub", "bob", "--projects", "*"}, withSecret, "",
			func(c *auth.Claims) bool {
				return c.Subject == "bob" && c.Collections == nil && c.Roles == nil && c.ExpiresAt.Before(time.Now().Add(61*time.Minute))
			}},
		{"no secret", []string{"--sub", "alice", "--projects", "p1"}, env(nil), "SYNCGATE_JWT_SECRET is not set", nil},
		{"short secret", []string{"--sub", "alice", "--projects", "p1"}, env(map[string]string{"SYNCGATE_JWT_SECRET": "short"}), "SYNCGATE_JWT_SECRET is 5 bytes", nil},
		{"no sub", []string{"--projects", "p1"}, withSecret, "--sub is required", nil},
		{"no projects", []string{"--sub", "alice"}, withSecret, "--projects is required", nil},
		{"bad project", []string{"--sub", "alice", "--projects", "p1,bad/name"}, withSecret, `"bad/name"`, nil},
		{"bad collection", []string{"--sub", "alice", "--projects", "p1", "--collections", "a b"}, withSecret, `"a b"`, nil},
		{"negative ttl", []string{"--sub", "alice", "--projects", "p1", "--ttl", "-1h"}, withSecret, "--ttl -1h0m0s", nil},
		{"unknown flag", []string{"--sub", "alice", "--projects", "p1", "--user", "x"}, withSecret, "flag provided but not defined", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"token"}, tt.args...), tt.getenv, &out, io.Discard)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || out.Len() != 0 {
					t.Fatalf("err %v, output %q; want an error containing %q and no output", err, out.String(), tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
			if err != nil || !tt.check(c) {
				t.Fatalf("printed token: %+v, %v", c, err)
			}
		})
	}
}
