package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/migrations"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

func runDetect(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet(a, "detect")
	dryRun := fs.Bool("dry-run", false, "show what would fire and why; save and send nothing")
	format := fs.String("format", "table", "table or json")
	connection := fs.String("connection", "", "evaluate the deal rules of this connection only (`NAME`; default: every connection)")
	limit := fs.Int("limit", 200, "list at most `N` alerts one by one (the counts cover all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("%w: --format %q: want table or json", errUsage, *format)
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit must not be negative", errUsage)
	}
	pool, err := a.db(ctx)
	if err != nil {
		return err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		return err
	}
	// An unstarted River client only inserts: notifications get their delivery jobs, which
	// `pipewatch worker` runs.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: a.logger})
	if err != nil {
		return fmt.Errorf("creating River client: %w", err)
	}
	opts := alerting.Options{ReportLimit: *limit, CountActive: true}
	if *connection != "" {
		if opts.ConnectionID, err = connectionID(ctx, pool, *connection); err != nil {
			return err
		}
	}
	d := &alerting.Detector{Logger: a.logger, Outbox: jobs.NotificationOutbox{Inserter: client}}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning the detect transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rep, err := d.Run(ctx, tx, opts)
	if err != nil {
		return err
	}
	if !*dryRun {
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("committing the detect run: %w", err)
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			DryRun bool `json:"dry_run"`
			*alerting.Report
		}{*dryRun, rep})
	}
	return writeDetectTable(a.stdout, rep, *dryRun)
}

func connectionID(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (int64, error) {
	var id int64
	var names []string
	err := db.QueryRow(ctx, `SELECT coalesce((SELECT id FROM connections WHERE name = $1), 0),
		coalesce((SELECT array_agg(name ORDER BY name) FROM connections), '{}')`, name).Scan(&id, &names)
	if err != nil {
		return 0, fmt.Errorf("looking up connection %s: %w", name, err)
	}
	if id == 0 {
		known := "none yet: run `pipewatch apply`"
		if len(names) > 0 {
			known = strings.Join(names, ", ")
		}
		return 0, fmt.Errorf("%w: no connection named %q (known: %s)", errUsage, name, known)
	}
	return id, nil
}

// writeDetectTable prints what a run evaluated, what it told and why.
func writeDetectTable(w io.Writer, rep *alerting.Report, dryRun bool) error {
	var b strings.Builder
	if dryRun {
		b.WriteString("Dry run: nothing was saved and nothing will be sent.\n\n")
	}
	b.WriteString("DATA\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, s := range rep.Scopes {
		state, note := "evaluated", ""
		if !s.Evaluated {
			state, note = "skipped", s.Reason
		} else {
			if !s.DataAsOf.IsZero() {
				note = "data as of " + s.DataAsOf.UTC().Format("2006-01-02 15:04 UTC")
			}
			if s.Reason != "" {
				note += "; " + s.Reason
			}
			if s.Baseline {
				note += "; first evaluation: existing conditions are recorded, managers get one summary"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, state, strings.TrimPrefix(note, "; "))
	}
	_ = tw.Flush()
	verb := "told"
	if dryRun {
		verb = "would tell"
	}
	fmt.Fprintf(&b, "\nALERTS: %d opened, %d updated, %d resolved; %s %d, %d escalated to managers\n",
		rep.Opened, rep.Updated, rep.Resolved, verb, rep.Told, rep.Escalated)
	if len(rep.Alerts) > 0 {
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  RULE\tSEVERITY\tWHY NOW\tSUBJECT\tAMOUNT\tOWNER\tHOW\tEVIDENCE")
		for _, o := range rep.Alerts {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Rule, o.Severity, strings.ReplaceAll(o.Reason, "_", " "),
				o.Subject, o.Amount, o.Owner, o.Delivery, o.Why)
		}
		_ = tw.Flush()
		if more := rep.Told - len(rep.Alerts); more > 0 {
			fmt.Fprintf(&b, "  … and %d more (raise --limit to list them)\n", more)
		}
	}
	if len(rep.Notifications) > 0 {
		fmt.Fprintf(&b, "\nMESSAGES (%d)\n", len(rep.Notifications))
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, n := range rep.Notifications {
			items := ""
			if n.Items > 0 {
				items = fmt.Sprintf(" (%d lines)", n.Items)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s%s\n", n.Channel, n.Recipient, n.Kind, n.Title, items)
		}
		_ = tw.Flush()
	}
	if len(rep.Active) > 0 {
		rules := make([]string, 0, len(rep.Active))
		for r := range rep.Active {
			rules = append(rules, r)
		}
		slices.Sort(rules)
		parts := make([]string, len(rules))
		for i, r := range rules {
			parts[i] = fmt.Sprintf("%s %d", r, rep.Active[r])
		}
		fmt.Fprintf(&b, "\nOPEN ALERTS BY RULE: %s\n", strings.Join(parts, ", "))
	}
	if !dryRun {
		fmt.Fprintf(&b, "\nRun %d at %s.\n", rep.RunID, rep.At.UTC().Format(time.RFC3339))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the detect report: %w", err)
	}
	return nil
}
