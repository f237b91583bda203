package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// Actions applies the buttons of alert messages: Snooze 3d and Snooze 7d quiet the alert
// until then (detect tells again if the condition still holds when the snooze ends), and
// Acknowledge quiets it until it resolves or its severity rises. Register it for
// ActionPrefix:
//
//	actions.Register(alerting.ActionPrefix, &alerting.Actions{Logger: logger})
type Actions struct {
	Logger *slog.Logger
	// NowFunc is the clock (time.Now when nil).
	NowFunc func() time.Time
}

// HandleAction changes the alert named by press.Value inside tx and returns its message
// re-rendered with the new state (a resolved alert is left as it is and shown resolved).
func (h *Actions) HandleAction(ctx context.Context, tx pgx.Tx, press notify.Press) (*notify.Message, error) {
	now := time.Now()
	if h.NowFunc != nil {
		now = h.NowFunc()
	}
	id, err := strconv.ParseInt(press.Value, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("reading the alert id of button %s: %q is not an id", press.ActionID, press.Value)
	}
	a, connID, ownerID, err := lockAlert(ctx, tx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		h.Logger.WarnContext(ctx, "alerting: button pressed on an alert that no longer exists", "alert_id", id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if a.State != "resolved" {
		switch press.ActionID {
		case ActionSnooze3Days, ActionSnooze7Days:
			days := 3
			if press.ActionID == ActionSnooze7Days {
				days = 7
			}
			a.State, a.SnoozedUntil, a.SnoozedBy = "snoozed", now.AddDate(0, 0, days), press.SlackUserID
			_, err = tx.Exec(ctx, `UPDATE alerts SET state = 'snoozed', snoozed_until = $2, due_at = $2, snoozed_by = nullif($3, '') WHERE id = $1`,
				id, a.SnoozedUntil, press.SlackUserID)
		case ActionAcknowledge:
			a.State, a.AcknowledgedBy = "acknowledged", press.SlackUserID
			_, err = tx.Exec(ctx, `UPDATE alerts SET state = 'acknowledged', acknowledged_at = $2, acknowledged_by = nullif($3, ''),
				snoozed_until = NULL, due_at = NULL WHERE id = $1`, id, now, press.SlackUserID)
		default:
			return nil, fmt.Errorf("unknown alert action %q", press.ActionID)
		}
		if err != nil {
			return nil, fmt.Errorf("applying %s to alert %d: %w", press.ActionID, id, err)
		}
		h.Logger.InfoContext(ctx, "alerting: alert changed from Slack", "alert_id", id, "state", a.State, "slack_user_id", press.SlackUserID)
	}
	v, err := messageView(ctx, tx, now, connID, ownerID, &a)
	if err != nil {
		return nil, err
	}
	m := v.message(a)
	return &m, nil
}

// lockAlert reads an alert for update.
func lockAlert(ctx context.Context, tx pgx.Tx, id int64) (Alert, int64, int64, error) {
	var (
		a                      Alert
		rule, sev              string
		doc                    []byte
		connID, ownerID        int64
		snoozedUntil           *time.Time
		snoozedBy, ackBy, reso string
	)
	err := tx.QueryRow(ctx, `
		SELECT id, rule, severity, state, details, coalesce(connection_id, 0), coalesce(owner_id, 0),
		       snoozed_until, coalesce(snoozed_by, ''), coalesce(acknowledged_by, ''), coalesce(resolution, '')
		FROM alerts WHERE id = $1 FOR UPDATE`, id,
	).Scan(&a.ID, &rule, &sev, &a.State, &doc, &connID, &ownerID, &snoozedUntil, &snoozedBy, &ackBy, &reso)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return a, 0, 0, err
		}
		return a, 0, 0, fmt.Errorf("loading alert %d: %w", id, err)
	}
	a.Rule, a.Severity, a.SnoozedBy, a.AcknowledgedBy, a.Resolution = Rule(rule), Severity(sev), snoozedBy, ackBy, reso
	if snoozedUntil != nil {
		a.SnoozedUntil = *snoozedUntil
	}
	if err := json.Unmarshal(doc, &a.Details); err != nil {
		return a, 0, 0, fmt.Errorf("decoding the evidence of alert %d: %w", id, err)
	}
	return a, connID, ownerID, nil
}

// messageView loads what rendering one alert needs: its connection, owner and calendars.
func messageView(ctx context.Context, tx pgx.Tx, now time.Time, connID, ownerID int64, a *Alert) (view, error) {
	s, err := LoadSettings(ctx, tx)
	if err != nil {
		return view{}, err
	}
	cals, err := s.calendars()
	if err != nil {
		return view{}, err
	}
	dir, err := loadDirectory(ctx, tx, s)
	if err != nil {
		return view{}, err
	}
	if connID != 0 {
		var c Connection
		var cfg []byte
		var synced *time.Time
		if err := tx.QueryRow(ctx, `SELECT id, name, kind, status, config, last_synced_at FROM connections WHERE id = $1`, connID).
			Scan(&c.ID, &c.Name, &c.Kind, &c.Status, &cfg, &synced); err != nil {
			return view{}, fmt.Errorf("loading connection %d: %w", connID, err)
		}
		if synced != nil {
			c.LastSyncedAt = *synced
		}
		if err := parseConnectionConfig(cfg, &c); err != nil {
			return view{}, err
		}
		a.Conn = &c
	}
	loc := cals.of("").Location()
	if p, ok := dir.Person(ownerID); ok {
		a.Owner = p
		if to, _, ok := dir.OwnerRecipient(ownerID); ok {
			loc = locationOf(to, loc)
		}
	}
	return view{now: now, loc: loc, cal: cals.of(dir.Team(ownerID))}, nil
}
