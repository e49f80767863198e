package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
)

// runToken is `gateway token`: it prints a client JWT signed with
// SYNCGATE_JWT_SECRET, for scripts and tests.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "user id (the token's sub); required")
	projects := fs.String("projects", "", "comma-separated projects the token may read (* for every project); required")
	collections := fs.String("collections", "", "comma-separated collections the token may read; empty: every collection")
	roles := fs.String("roles", "", "comma-separated roles, matched against an event's audience.roles")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: SYNCGATE_JWT_SECRET=… gateway token --sub U --projects p1,p2 [--collections a,b] [--roles r] [--ttl 1h]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments %q", fs.Args())
	}
	secret := getenv("SYNCGATE_JWT_SECRET")
	if secret == "" {
		return errors.New("token: SYNCGATE_JWT_SECRET is not set: the token is signed with the gateway's HS256 secret")
	}
	if len(secret) < 32 {
		return fmt.Errorf("token: SYNCGATE_JWT_SECRET is %d bytes, the gateway needs at least 32", len(secret))
	}
	c := auth.Claims{Subject: *sub, ExpiresAt: time.Now().Add(*ttl), Projects: list(*projects), Roles: list(*roles)}
	switch {
	case c.Subject == "":
		return errors.New("token: --sub is required")
	case len(c.Projects) == 0:
		return errors.New("token: --projects is required (* for every project)")
	case *ttl <= 0:
		return fmt.Errorf("token: --ttl %s must be more than 0", *ttl)
	}
	for _, p := range c.Projects {
		if err := syncgate.ValidateProject(p); err != nil && p != "*" {
			return fmt.Errorf("token: --projects: %w", err)
		}
	}
	if *collections != "" {
		c.Collections = list(*collections)
		for _, col := range c.Collections {
			if err := syncgate.ValidateCollection(col); err != nil && col != syncgate.AllCollections {
				return fmt.Errorf("token: --collections: %w", err)
			}
		}
	}
	tok, err := auth.SignHS256([]byte(secret), c)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// list splits a comma-separated flag, dropping empty entries; nil for none.
func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
