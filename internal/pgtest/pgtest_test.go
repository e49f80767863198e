package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartRestart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	query := func() string {
		t.Helper()
		c, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var level string
		if err := c.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
			t.Fatal(err)
		}
		return level
	}
	if got := query(); got != "logical" {
		t.Fatalf("wal_level = %q, want logical", got)
	}
	s.Crash()
	s.Restart()
	if got := query(); got != "logical" {
		t.Fatalf("after restart wal_level = %q, want logical", got)
	}
}
