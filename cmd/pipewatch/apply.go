package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/migrations"
)

func runApply(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet(a, "apply")
	file := fs.String("f", "", "the config file (YAML) to apply")
	dryRun := fs.Bool("dry-run", false, "validate and show what would change, then roll back")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: pipewatch apply -f pipewatch.yaml [-dry-run]", errUsage)
	}
	f, err := config.Load(*file, nil)
	if err != nil {
		return err
	}
	box, err := secrets.FromEnv()
	if err != nil && !errors.Is(err, secrets.ErrNoKey) {
		return err
	}
	pool, err := a.db(ctx)
	if err != nil {
		return err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		return err
	}
	var summary *config.Summary
	if *dryRun {
		// Apply inside a transaction that is always rolled back: its own transaction
		// becomes a savepoint, so the summary is exactly what a real apply would do.
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if summary, err = config.Apply(ctx, tx, f, box); err != nil {
				return err
			}
			return errDryRun
		})
		if errors.Is(err, errDryRun) {
			err = nil
		}
	} else {
		summary, err = config.Apply(ctx, pool, f, box)
	}
	if err != nil {
		return err
	}
	if _, err := summary.WriteTo(a.stdout); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintln(a.stdout, "dry run: nothing was written")
	}
	return nil
}

var errDryRun = errors.New("dry run: rolling back")
