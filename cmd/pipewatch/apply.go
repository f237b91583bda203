package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/migrations"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
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
		return nil
	}
	return warnUnmappedStages(ctx, a, pool)
}

// warnUnmappedStages lists the synced stages no standard stage covers: their deals are
// left out of stage-based metrics and rules until stage_map maps them.
func warnUnmappedStages(ctx context.Context, a *app, db analytics.Querier) error {
	stages, err := analytics.UnmappedStages(ctx, db, analytics.Scope{Kind: analytics.ScopeAll})
	if err != nil {
		return err
	}
	if len(stages) == 0 {
		return nil
	}
	fmt.Fprintf(a.stdout, "warning: %d synced stages map to no standard stage; add them to the connection's stage_map:\n", len(stages))
	for _, s := range stages {
		fmt.Fprintf(a.stdout, "  %s: %q (id %s, pipeline %q, %d open deals)\n", s.Connection, s.Name, s.ExternalID, s.Pipeline, s.OpenDeals)
	}
	return nil
}

var errDryRun = errors.New("dry run: rolling back")
