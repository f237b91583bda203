package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/internal/sandbox"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

// summary prints what pipewatch knows after the demo's cycle: what was synced, the
// report, the alerts and why, the Slack messages and the reminders scheduled.
func (d *demo) summary(ctx context.Context) error {
	d.printf("[3/3] What pipewatch knows now\n\n")
	for _, part := range []func(context.Context) error{d.synced, d.report, d.alerts, d.messages, d.reminders} {
		if err := part(ctx); err != nil {
			return err
		}
		d.printf("\n")
	}
	d.printf("Explore: DATABASE_URL='%s' pipewatch report   (the whole report; or psql on that URL)\n", d.opts.Database)
	return nil
}

// synced prints the sync runs per connection and stream, and the rows now in the model.
func (d *demo) synced(ctx context.Context) error {
	rows, err := d.pool.Query(ctx, `
		SELECT c.name, r.stream, count(*), sum(r.requests), sum(r.records_read), sum(r.inserted), sum(r.updated), sum(r.deleted)
		FROM sync_runs r JOIN connections c ON c.id = r.connection_id
		GROUP BY 1, 2 ORDER BY 1, min(r.id)`)
	if err != nil {
		return fmt.Errorf("reading the sync runs: %w", err)
	}
	d.printf("Synced (every run of every stream: the first sync, then incremental ones)\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  CONNECTION\tSTREAM\tRUNS\tREQUESTS\tREAD\tINSERTED\tUPDATED\tDELETED\t\n")
	var name, stream string
	var runs, requests, read, inserted, updated, deleted int64
	_, err = pgx.ForEachRow(rows, []any{&name, &stream, &runs, &requests, &read, &inserted, &updated, &deleted}, func() error {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, stream, runs, requests, read, inserted, updated, deleted)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the sync runs: %w", err)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var deals, open, owners, activities, leads, contacts, accounts, history, changes int64
	err = d.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM deals WHERE deleted_at IS NULL),
		       (SELECT count(*) FROM deals WHERE deleted_at IS NULL AND NOT is_closed),
		       (SELECT count(*) FROM owners WHERE deleted_at IS NULL),
		       (SELECT count(*) FROM activities WHERE deleted_at IS NULL),
		       (SELECT count(*) FROM leads WHERE deleted_at IS NULL),
		       (SELECT count(*) FROM contacts WHERE deleted_at IS NULL),
		       (SELECT count(*) FROM accounts WHERE deleted_at IS NULL),
		       (SELECT count(*) FROM deal_stage_history),
		       (SELECT count(*) FROM deal_changes)`).
		Scan(&deals, &open, &owners, &activities, &leads, &contacts, &accounts, &history, &changes)
	if err != nil {
		return fmt.Errorf("counting the synced rows: %w", err)
	}
	d.printf("  In Postgres: %d deals (%d open), %d owners, %d accounts, %d contacts, %d leads, %d activities,\n",
		deals, open, owners, accounts, contacts, leads, activities)
	d.printf("  %d stage-history rows and %d observed deal changes (close dates pushed between syncs).\n", history, changes)
	return nil
}

// report prints the headline figures of this quarter's report.
func (d *demo) report(ctx context.Context) error {
	now := time.Now()
	r, err := analytics.BuildReport(ctx, d.pool, analytics.Request{Period: analytics.QuarterOf(now),
		Scope: analytics.Scope{Kind: analytics.ScopeAll}, Now: now})
	if err != nil {
		return err
	}
	d.printf("Report %s (pipeline/analytics; `pipewatch report` prints all of it)\n", r.Period.Label)
	var open []string
	for _, c := range r.OpenPipeline.ByCurrency {
		open = append(open, fmt.Sprintf("%s %s (%d deals, weighted %s)", c.Currency, money(c.Amount), c.Deals, money(c.Weighted)))
	}
	d.printf("  Open pipeline:  %s\n", strings.Join(open, "; "))
	d.printf("  Win rate:       %s this quarter (%d won, %d lost); sales cycle median %s days\n",
		pct(r.WinRate.Rate), r.WinRate.Won, r.WinRate.Lost, days(r.SalesCycle.MedianDays))
	if lv := r.LeadVelocity; lv != nil {
		var months []string
		for _, m := range lv.Series {
			months = append(months, fmt.Sprintf("%s %d", m.Month, m.QualifiedLeads))
		}
		partial := ""
		if lv.Partial {
			partial = " (this month so far)"
		}
		d.printf("  SQLs per month: %s%s\n", strings.Join(months, ", "), partial)
	}
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  COVERAGE\tTARGET\tWON\tOPEN IN QUARTER\tCOVERAGE\tNEEDED\tSTATUS\n")
	for _, c := range r.Coverage {
		name := c.Name
		if c.Subject == "team" {
			name = "team " + name
		}
		cov := "-"
		if c.Coverage.Valid {
			cov = c.Coverage.Decimal.StringFixed(1) + "×"
		}
		fmt.Fprintf(tw, "  %s\t%s %s\t%s\t%s\t%s\t%s×\t%s\n", name, c.Currency, money(c.Target), money(c.Won), money(c.OpenPipeline),
			cov, c.RequiredCoverage.StringFixed(1), c.Status)
	}
	return tw.Flush()
}

func money(v decimal.Decimal) string {
	s := v.Round(0).String()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

func pct(v decimal.NullDecimal) string {
	if !v.Valid {
		return "-"
	}
	return v.Decimal.Mul(decimal.NewFromInt(100)).StringFixed(0) + "%"
}

func days(v decimal.NullDecimal) string {
	if !v.Valid {
		return "-"
	}
	return v.Decimal.StringFixed(0)
}

// demoAlert is an alerts row as the demo shows it.
type demoAlert struct {
	ID       int64
	Rule     alerting.Rule
	Severity string
	State    string
	Owner    string
	Details  alerting.Details
}

func (d *demo) loadAlerts(ctx context.Context, where string, args ...any) ([]demoAlert, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT a.id, a.rule, a.severity, a.state, coalesce(o.email, ''), a.details
		FROM alerts a LEFT JOIN owners o ON o.id = a.owner_id
		WHERE `+where+`
		ORDER BY a.rule, (a.details->>'amount')::numeric DESC NULLS LAST, a.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the alerts: %w", err)
	}
	var out []demoAlert
	var a demoAlert
	var rule string
	var details []byte
	_, err = pgx.ForEachRow(rows, []any{&a.ID, &rule, &a.Severity, &a.State, &a.Owner, &details}, func() error {
		a.Rule = alerting.Rule(rule)
		a.Details = alerting.Details{}
		if err := json.Unmarshal(details, &a.Details); err != nil {
			return fmt.Errorf("decoding the evidence of alert %d: %w", a.ID, err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the alerts: %w", err)
	}
	for _, a := range out {
		d.alertsShown = max(d.alertsShown, a.ID)
	}
	return out, nil
}

// alerts prints the open alerts by rule, with the evidence of the biggest deals.
func (d *demo) alerts(ctx context.Context) error {
	all, err := d.loadAlerts(ctx, `a.state <> 'resolved'`)
	if err != nil {
		return err
	}
	d.printf("Alerts: %d open (rule, evidence; the biggest deals of each rule)\n", len(all))
	const shown = 3
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].Rule == all[i].Rule {
			j++
		}
		d.printf("  %s: %d\n", all[i].Rule.Title(), j-i)
		for _, a := range all[i:min(j, i+shown)] {
			d.printf("    - %s\n", describeAlert(a))
		}
		i = j
	}
	return nil
}

// newAlerts prints the alerts opened since the last print.
func (d *demo) newAlerts(ctx context.Context) error {
	fresh, err := d.loadAlerts(ctx, `a.id > $1`, d.alertsShown)
	if err != nil {
		return err
	}
	for _, a := range fresh {
		d.printf("      new alert, %s: %s\n", a.Rule.Title(), describeAlert(a))
	}
	return nil
}

// describeAlert is one line: the subject, its owner and the evidence.
func describeAlert(a demoAlert) string {
	x := a.Details
	subject := x.DealName
	if x.Amount.Valid {
		subject += fmt.Sprintf(" (%s %s)", x.Currency, money(x.Amount.Decimal))
	}
	var why string
	switch a.Rule {
	case alerting.RuleIdle:
		why = fmt.Sprintf("no touch for %d days in %s (threshold %s)", x.DaysIdle, x.StageName, x.Threshold)
		if x.ThresholdSource != "" {
			why = fmt.Sprintf("no touch for %d days in %s (threshold %s, %s)", x.DaysIdle, x.StageName, x.Threshold, x.ThresholdSource)
		}
	case alerting.RuleStuckInStage:
		why = fmt.Sprintf("%d days in %s; threshold %.0f days (%s)", x.DaysInStage, x.StageName, x.ThresholdDays, x.ThresholdSource)
	case alerting.RulePastCloseDate:
		why = fmt.Sprintf("close date %s passed %d days ago", x.CloseDate, x.DaysOverdue)
	case alerting.RuleCloseDateSlipped:
		why = fmt.Sprintf("close date pushed %d×", x.PushCount)
		if n := len(x.CloseDateHistory); n > 0 {
			why += fmt.Sprintf(", latest %s → %s", x.CloseDateHistory[n-1].From, x.CloseDateHistory[n-1].To)
		}
		if x.PushedOutOfPeriod {
			why += ", out of the quarter"
		}
	case alerting.RuleNoNextStep:
		why = map[string]string{"overdue": "the next activity is overdue", "too_far": "the next activity is more than " + x.Horizon + " away"}[x.Reason]
		if why == "" {
			why = "nothing scheduled"
		}
	case alerting.RuleCoverageShortfall:
		if c := x.Coverage; c != nil {
			subject = c.Scope + " " + c.Name
			why = fmt.Sprintf("%s %s open against %s remaining: %s× coverage, %s× needed", c.Currency, money(c.OpenPipeline),
				money(c.Remaining), c.Coverage.StringFixed(1), c.RequiredCoverage.StringFixed(1))
		}
	case alerting.RuleLeadVelocityDrop:
		if l := x.LeadVelocity; l != nil {
			subject = strings.ToUpper(l.Stage) + "s"
			why = fmt.Sprintf("%d in the last %s against %d before (%.0f%%)", l.CurrentCount, l.Window, l.PreviousCount, 100*l.Change)
		}
	}
	line := subject
	if a.Owner != "" && x.Coverage == nil {
		line += ", " + a.Owner
	}
	if why != "" {
		line += ": " + why
	}
	if a.Severity == string(alerting.SeverityCritical) {
		line += " [critical]"
	}
	return line
}

// messages prints the Slack messages: sent, and waiting for their recipients' hours.
func (d *demo) messages(ctx context.Context) error {
	var sent, waiting, failed int64
	if err := d.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'pending'),
		       count(*) FILTER (WHERE state = 'failed')
		FROM notifications`).Scan(&sent, &waiting, &failed); err != nil {
		return fmt.Errorf("reading the notifications: %w", err)
	}
	d.printf("Slack messages: %d delivered (printed above), %d waiting for their recipients' working hours, %d failed\n",
		sent, waiting, failed)
	rows, err := d.pool.Query(ctx, `
		SELECT recipient, payload->>'title', not_before FROM notifications
		WHERE state = 'pending' ORDER BY not_before, id LIMIT 6`)
	if err != nil {
		return fmt.Errorf("reading the notifications: %w", err)
	}
	var recipient, title string
	var notBefore time.Time
	_, err = pgx.ForEachRow(rows, []any{&recipient, &title, &notBefore}, func() error {
		d.printf("  - to %s at %s: %s\n", recipient, d.recipientTime(recipient, notBefore), title)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the notifications: %w", err)
	}
	return nil
}

// recipientTime is t in the zone pipewatch uses for a sandbox recipient: their own when
// the CRM keeps one (Pipedrive), else their team's.
func (d *demo) recipientTime(recipient string, t time.Time) string {
	for _, team := range d.sb.Company.Teams {
		for _, p := range team.People() {
			if !strings.EqualFold(p.Email, recipient) {
				continue
			}
			if team.CRM == sandbox.Pipedrive {
				if loc, err := time.LoadLocation(p.Timezone); err == nil {
					return t.In(loc).Format("Mon 15:04 MST")
				}
			}
			return t.In(team.Location()).Format("Mon 15:04 MST")
		}
		if team.SlackChannel == recipient {
			return t.In(team.Location()).Format("Mon 15:04 MST")
		}
	}
	return t.UTC().Format("Mon 15:04 UTC")
}

// reminders prints the follow-up reminders scheduled.
func (d *demo) reminders(ctx context.Context) error {
	var listed []reminder.Listed
	err := reminder.List(ctx, d.pool, reminder.ListFilter{}, func(l reminder.Listed) error {
		listed = append(listed, l)
		return nil
	})
	if err != nil {
		return err
	}
	cadences := map[int64]bool{}
	scheduled := 0
	for _, l := range listed {
		cadences[l.CadenceID] = true
		if l.State == "scheduled" {
			scheduled++
		}
	}
	d.printf("Follow-up reminders: %d deals in proposal have a cadence, %d reminders scheduled (next ones below)\n",
		len(cadences), scheduled)
	n := 0
	for _, l := range listed {
		if l.State != "scheduled" || n == 6 {
			continue
		}
		n++
		d.printf("  - %s, %s: follow-up %d due %s\n", l.OwnerEmail, l.DealName, l.Step, l.DueLocal())
	}
	return nil
}
