package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/migrations"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// runSync runs syncs in the foreground through the same engine as the sync_connection
// job, prints a summary per stream and fails when any stream did not finish.
func runSync(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet(a, "sync")
	name := fs.String("connection", "", "sync only the connection called `NAME` (default: every active connection)")
	stream := fs.String("stream", "", "sync only `STREAM` of the connection (default: every stream, deletions included)")
	full := fs.Bool("full", false, "read in full and reconcile: records gone from the vendor are tombstoned")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *stream != "" && *name == "" {
		return fmt.Errorf("%w: --stream needs --connection (stream names differ between vendors)", errUsage)
	}
	pool, err := a.db(ctx)
	if err != nil {
		return err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		return err
	}
	deps := &jobs.Deps{Pool: pool, Logger: a.logger}
	if err := addSyncDeps(deps); err != nil {
		return err
	}
	// An unstarted client only inserts: syncs that change data enqueue detection for the
	// workers, as the job does.
	client, err := jobs.NewClient(deps, jobs.Config{})
	if err != nil {
		return err
	}
	engine := jobs.NewSyncEngine(deps)

	var conns []store.Connection
	if *name != "" {
		c, err := store.LoadConnectionByName(ctx, pool, *name)
		if err != nil {
			return err
		}
		conns = []store.Connection{c}
	} else if conns, err = store.ConnectionsByStatus(ctx, pool, store.StatusActive); err != nil {
		return err
	}
	if len(conns) == 0 {
		fmt.Fprintln(a.stdout, "No active connections: add them to the config file and run `pipewatch apply`.")
		return nil
	}
	mode := connectors.Incremental
	if *full {
		mode = connectors.Full
	}
	var results []jobs.SyncResult
	for _, c := range conns {
		req := jobs.SyncRequest{
			ConnectionID: c.ID, Stream: *stream, Mode: mode, AllowInactive: *name != "",
			OnSucceededTxFunc: enqueueAfterSync(client),
		}
		if *stream != "" {
			res, _ := engine.Run(ctx, req)
			results = append(results, res)
		} else {
			res, _ := engine.RunStreams(ctx, req)
			results = append(results, res...)
		}
		if ctx.Err() != nil {
			break
		}
	}
	printSyncSummary(a, results)
	return syncFailures(ctx, a, pool, results)
}

func enqueueAfterSync(inserter jobs.Inserter) func(context.Context, pgx.Tx, jobs.SyncResult) error {
	return func(ctx context.Context, tx pgx.Tx, res jobs.SyncResult) error {
		return jobs.EnqueueAfterSyncTx(ctx, tx, inserter, res.ConnectionID, time.Now())
	}
}

// addSyncDeps gives deps what syncs need: every connector of this build, the connections'
// sealed credentials (PIPEWATCH_SECRET_KEY; without it a sync fails saying so) and the
// process's rate limiters.
func addSyncDeps(deps *jobs.Deps) error {
	box, err := secrets.FromEnv()
	if err != nil && !errors.Is(err, secrets.ErrNoKey) {
		return err
	}
	deps.Credentials = &credentials.Store{Box: box}
	deps.Connectors = jobs.DefaultConnectors(connectors.HTTPConfig{})
	deps.Limiters = connectors.NewLimiters()
	return nil
}

func printSyncSummary(a *app, results []jobs.SyncResult) {
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "CONNECTION\tSTREAM\tMODE\tREQUESTS\tRETRIES\tREAD\tINSERTED\tUPDATED\tDELETED\tSKIPPED\tDURATION\tSTATUS\t")
	for _, r := range results {
		stream, mode := r.Stream, string(r.Mode)
		if stream == "" { // the connection could not be set up
			stream, mode = "-", "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", r.Connection, stream, mode, r.Requests,
			r.Retries, r.Read, r.Inserted, r.Updated, r.Deleted, r.Skipped, r.Duration.Round(time.Millisecond), r.Status)
	}
	_ = w.Flush()
}

// syncFailures explains the streams that did not finish, with the connection status a
// person must act on, and returns an error when there are any.
func syncFailures(ctx context.Context, a *app, db store.Querier, results []jobs.SyncResult) error {
	var lines []string
	seen := map[int64]bool{}
	for _, r := range results {
		if r.Outcome == jobs.OutcomeSucceeded {
			continue
		}
		line := fmt.Sprintf("%s %s: %v", r.Connection, r.Stream, r.Err)
		if r.Outcome == jobs.OutcomeSnooze && r.RetryAfter > 0 {
			line += fmt.Sprintf(" (progress is saved; run again after %s)", r.RetryAfter.Round(time.Second))
		}
		lines = append(lines, line)
		if seen[r.ConnectionID] {
			continue
		}
		seen[r.ConnectionID] = true
		if c, err := store.LoadConnection(context.WithoutCancel(ctx), db, r.ConnectionID); err == nil && c.Status != store.StatusActive {
			fmt.Fprintf(a.stderr, "\nConnection %s is %s: %s\n", c.Name, c.Status, c.StatusReason)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d streams did not finish:\n  %s", len(lines), len(results), strings.Join(lines, "\n  "))
}
