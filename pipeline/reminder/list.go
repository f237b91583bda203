package reminder

import (
	"context"
	"fmt"
	"time"
)

// Listed is one reminder as `pipewatch reminders list` shows it.
type Listed struct {
	ReminderID, CadenceID, DealID int64
	DealName                      string
	OwnerEmail                    string
	Step                          int
	DueAt                         time.Time
	// Zone is the rep's time zone the cadence was planned in, ZoneSource where it came from.
	Zone       *time.Location
	ZoneSource ZoneSource
	// State is scheduled, sent, skipped or cancelled; Reason says why (for a scheduled
	// reminder: what its due time counts from).
	State, Reason string
	// Action is what the rep did with a sent reminder (done, snoozed, stopped; "" = none).
	Action string
	// Delivery is the state of a sent reminder's Slack message (pending, sent, failed,
	// cancelled; "" = not sent) and DeliveryError why it failed.
	Delivery, DeliveryError string
	// CadenceState is active, finished, stopped or cancelled; CadenceReason why it ended.
	CadenceState, CadenceReason string
}

// DueLocal is the due time in the rep's zone: "Tue 10 Mar 09:00 JST".
func (l Listed) DueLocal() string { return localTime(l.DueAt, l.Zone) }

// ListFilter selects reminders.
type ListFilter struct {
	// OwnerEmail limits the list to one rep ("" = everyone).
	OwnerEmail string
	// Ended includes the cadences that ended; by default only active ones are listed.
	Ended bool
}

// List calls each with the reminders of the matching cadences, by rep, cadence and step,
// streaming them from db.
func List(ctx context.Context, db Querier, f ListFilter, each func(Listed) error) error {
	rows, err := db.Query(ctx, `
		SELECT r.id, c.id, d.id, coalesce(d.name, ''), coalesce(o.email, ''), r.step, r.due_at, c.timezone, c.zone_source,
		       r.state, coalesce(r.reason, ''), coalesce(r.action, ''), c.state, coalesce(c.reason, ''),
		       coalesce(n.state, ''), coalesce(n.error, '')
		FROM reminders r
		JOIN reminder_cadences c ON c.id = r.cadence_id
		LEFT JOIN notifications n ON n.id = r.notification_id
		JOIN deals d ON d.id = c.deal_id
		LEFT JOIN owners o ON o.id = c.owner_id
		WHERE ($1 = '' OR lower(o.email) = lower($1)) AND ($2 OR c.state = 'active')
		ORDER BY lower(coalesce(o.email, '')), c.id, r.step, r.id`, f.OwnerEmail, f.Ended)
	if err != nil {
		return fmt.Errorf("listing reminders: %w", err)
	}
	defer rows.Close()
	zones := map[string]*time.Location{}
	for rows.Next() {
		var l Listed
		var zone string
		if err := rows.Scan(&l.ReminderID, &l.CadenceID, &l.DealID, &l.DealName, &l.OwnerEmail, &l.Step, &l.DueAt, &zone,
			&l.ZoneSource, &l.State, &l.Reason, &l.Action, &l.CadenceState, &l.CadenceReason, &l.Delivery, &l.DeliveryError); err != nil {
			return fmt.Errorf("listing reminders: %w", err)
		}
		if l.Zone = zones[zone]; l.Zone == nil {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				loc = time.UTC
			}
			zones[zone], l.Zone = loc, loc
		}
		if err := each(l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing reminders: %w", err)
	}
	return nil
}
