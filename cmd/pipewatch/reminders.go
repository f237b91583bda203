package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/migrations"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

const remindersUsage = "pipewatch reminders list [--owner EMAIL] [--all] [--format table|json]"

func runReminders(ctx context.Context, a *app, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("%w: %s", errUsage, remindersUsage)
	}
	fs := newFlagSet(a, "reminders list")
	owner := fs.String("owner", "", "only this rep's reminders (email)")
	all := fs.Bool("all", false, "include cadences that ended (finished, stopped, cancelled)")
	format := fs.String("format", "table", "table or json")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (%s)", errUsage, fs.Arg(0), remindersUsage)
	}
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
	settings, err := config.LoadReminders(ctx, pool)
	if err != nil {
		return err
	}
	filter := reminder.ListFilter{OwnerEmail: strings.TrimSpace(*owner), Ended: *all}
	if *format == "json" {
		return listRemindersJSON(ctx, a, pool, filter, len(settings.Steps))
	}

	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAL\tOWNER\tSTEP\tDUE (REP'S TIME)\tZONE\tSTATE\tWHY")
	n := 0
	err = reminder.List(ctx, pool, filter, func(l reminder.Listed) error {
		n++
		_, err := fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s (%s)\t%s\t%s\n", dealLabel(l), orNone(l.OwnerEmail), l.Step, len(settings.Steps),
			l.DueLocal(), l.Zone, l.ZoneSource, l.State, why(l))
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		what := "no active reminder cadences"
		if *all {
			what = "no reminders"
		}
		if filter.OwnerEmail != "" {
			what += " for " + filter.OwnerEmail
		}
		_, err := fmt.Fprintf(a.stdout, "%s (a deal entering %s starts one after the next sync)\n", what, settings.Trigger)
		return err
	}
	return tw.Flush()
}

func dealLabel(l reminder.Listed) string {
	name := strings.TrimSpace(l.DealName)
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("%s (#%d)", name, l.DealID)
}

func orNone(s string) string {
	if s == "" {
		return "(no owner)"
	}
	return s
}

// why is what the reason column says: the reminder's reason, what the rep did with it,
// and why its cadence ended.
func why(l reminder.Listed) string {
	parts := []string{l.Reason}
	switch l.Delivery {
	case "pending":
		parts = append(parts, "Slack delivery pending (the rep's working hours, or a retry)")
	case "failed":
		parts = append(parts, "Slack delivery failed: "+l.DeliveryError)
	}
	if l.Action != "" {
		parts = append(parts, "the rep pressed "+l.Action)
	}
	if l.CadenceState != "active" && l.CadenceReason != "" && l.CadenceReason != l.Reason {
		parts = append(parts, "cadence "+l.CadenceState+": "+l.CadenceReason)
	}
	return strings.Join(parts, "; ")
}

// listedJSON is one reminder in `--format json`.
type listedJSON struct {
	ReminderID    int64     `json:"reminder_id"`
	CadenceID     int64     `json:"cadence_id"`
	DealID        int64     `json:"deal_id"`
	Deal          string    `json:"deal"`
	Owner         string    `json:"owner"`
	Step          int       `json:"step"`
	Steps         int       `json:"steps"`
	DueAt         time.Time `json:"due_at"`
	DueLocal      string    `json:"due_local"`
	TimeZone      string    `json:"time_zone"`
	ZoneSource    string    `json:"time_zone_source"`
	State         string    `json:"state"`
	Reason        string    `json:"reason"`
	Action        string    `json:"action,omitempty"`
	Delivery      string    `json:"delivery,omitempty"`
	DeliveryError string    `json:"delivery_error,omitempty"`
	CadenceState  string    `json:"cadence_state"`
	CadenceReason string    `json:"cadence_reason,omitempty"`
}

// listRemindersJSON streams the reminders as a JSON array.
func listRemindersJSON(ctx context.Context, a *app, db reminder.Querier, filter reminder.ListFilter, steps int) error {
	sep := "[\n  "
	err := reminder.List(ctx, db, filter, func(l reminder.Listed) error {
		doc, err := json.MarshalIndent(listedJSON{
			ReminderID: l.ReminderID, CadenceID: l.CadenceID, DealID: l.DealID, Deal: l.DealName, Owner: l.OwnerEmail,
			Step: l.Step, Steps: steps, DueAt: l.DueAt.UTC(), DueLocal: l.DueLocal(), TimeZone: l.Zone.String(),
			ZoneSource: string(l.ZoneSource), State: l.State, Reason: l.Reason, Action: l.Action,
			Delivery: l.Delivery, DeliveryError: l.DeliveryError, CadenceState: l.CadenceState, CadenceReason: l.CadenceReason,
		}, "  ", "  ")
		if err != nil {
			return fmt.Errorf("encoding reminder %d: %w", l.ReminderID, err)
		}
		_, err = fmt.Fprint(a.stdout, sep, string(doc))
		sep = ",\n  "
		return err
	})
	if err != nil {
		return err
	}
	if sep == "[\n  " {
		_, err = fmt.Fprintln(a.stdout, "[]")
		return err
	}
	_, err = fmt.Fprintln(a.stdout, "\n]")
	return err
}
