package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// installDDL installs the DDL event trigger.
func installDDL(ctx context.Context, conn *pgx.Conn) error { return nil }
