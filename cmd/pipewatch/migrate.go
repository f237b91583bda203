package main

import (
	"context"

	"github.com/pipewatch/pipewatch/migrations"
)

func runMigrate(ctx context.Context, a *app, args []string) error {
	if err := newFlagSet(a, "migrate").Parse(args); err != nil {
		return err
	}
	pool, err := a.db(ctx)
	if err != nil {
		return err
	}
	if err := migrations.Up(ctx, pool, a.logger); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "migrate: database is current")
	return nil
}
