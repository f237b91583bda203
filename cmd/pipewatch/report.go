package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pipewatch/pipewatch/migrations"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

func runReport(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet(a, "report")
	period := fs.String("period", "", "month (2026-11), quarter (2026-Q4), year (2026) or days (2026-10-01..2026-12-15); default: the current quarter")
	scope := fs.String("scope", "all", "all, team:NAME, owner:EMAIL, pipeline:ID or connection:NAME")
	format := fs.String("format", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	now := time.Now()
	req := analytics.Request{Period: analytics.QuarterOf(now), Now: now}
	if *period != "" {
		p, err := analytics.ParsePeriod(*period)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		req.Period = p
	}
	s, err := analytics.ParseScope(*scope)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	req.Scope = s
	if *format != "table" && *format != "json" {
		return fmt.Errorf("%w: --format %q: want table or json", errUsage, *format)
	}

	pool, err := a.db(ctx)
	if err != nil {
		return err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		return err
	}
	report, err := analytics.BuildReport(ctx, pool, req)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	return analytics.WriteTable(a.stdout, report)
}
