package alerting_test

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

func TestActions(t *testing.T) {
	t.Parallel()

	setupAlert := func(t *testing.T) (*testBundle, alertRow) {
		t.Helper()
		b := setup(t)
		b.rules(t, onlyRules("idle"))
		conn := b.established(t, "crm", "salesforce", map[string]any{"base_url": "https://acme.my.salesforce.com"})
		ana := b.owner(t, conn, "ana@example.com", ownerOpts{})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		b.idleDeal(t, conn, qual, ana, 8*day)
		b.detect(t)
		return b, b.alerts(t, "")[0]
	}

	t.Run("SnoozeChangesStateAndMessage", func(t *testing.T) {
		t.Parallel()
		b, a := setupAlert(t)
		msg := b.press(t, alerting.ActionSnooze7Days, a.ID)
		var state string
		var until time.Time
		var by string
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT state, snoozed_until, snoozed_by FROM alerts WHERE id = $1`, a.ID).Scan(&state, &until, &by))
		require.Equal(t, "snoozed", state)
		require.Equal(t, b.now.AddDate(0, 0, 7), until.UTC())
		require.Equal(t, "U123", by)
		require.Equal(t, []notify.Action{{ID: alerting.ActionAcknowledge, Label: "Acknowledge", Value: strconv.FormatInt(a.ID, 10), Style: "primary"}},
			msg.Actions, "a snoozed alert can still be acknowledged")
		require.Equal(t, "Open in Salesforce", msg.Link.Text)
		require.Regexp(t, `^https://acme\.my\.salesforce\.com/lightning/r/Opportunity/d-\d+/view$`, msg.Link.URL)
		require.Contains(t, msg.Summary, "No touch for 8 days")
	})

	t.Run("AcknowledgeChangesState", func(t *testing.T) {
		t.Parallel()
		b, a := setupAlert(t)
		b.press(t, alerting.ActionAcknowledge, a.ID)
		var state, by string
		var at time.Time
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT state, acknowledged_by, acknowledged_at FROM alerts WHERE id = $1`, a.ID).Scan(&state, &by, &at))
		require.Equal(t, "acknowledged", state)
		require.Equal(t, "U123", by)
		require.Equal(t, b.now, at.UTC())
	})

	t.Run("ResolvedAlertStaysResolved", func(t *testing.T) {
		t.Parallel()
		b, a := setupAlert(t)
		b.exec(t, `UPDATE deals SET last_activity_at = $1`, b.now)
		b.detect(t)
		msg := b.press(t, alerting.ActionSnooze3Days, a.ID)
		require.Equal(t, "resolved", b.alerts(t, "")[0].State)
		require.Empty(t, msg.Actions)
		require.Contains(t, msg.Context, "resolved (cleared)")
	})

	t.Run("BadPresses", func(t *testing.T) {
		t.Parallel()
		b, a := setupAlert(t)
		h := &alerting.Actions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		_, err := h.HandleAction(b.ctx, b.tx, notify.Press{ActionID: alerting.ActionSnooze3Days, Value: "x1"})
		require.EqualError(t, err, `reading the alert id of button alert.snooze_3d: "x1" is not an id`)
		_, err = h.HandleAction(b.ctx, b.tx, notify.Press{ActionID: "alert.mark_lost", Value: strconv.FormatInt(a.ID, 10)})
		require.EqualError(t, err, `unknown alert action "alert.mark_lost"`)
		msg, err := h.HandleAction(b.ctx, b.tx, notify.Press{ActionID: alerting.ActionAcknowledge, Value: "999999"})
		require.NoError(t, err, "a press on an alert that was deleted with its deal changes nothing")
		require.Nil(t, msg)
		require.Equal(t, "open", b.alerts(t, "id = $1", a.ID)[0].State)
	})

	t.Run("RegisteredUnderThePrefix", func(t *testing.T) {
		t.Parallel()
		actions := notify.NewActions()
		h := &alerting.Actions{}
		actions.Register(alerting.ActionPrefix, h)
		for _, id := range []string{alerting.ActionSnooze3Days, alerting.ActionSnooze7Days, alerting.ActionAcknowledge} {
			require.Equal(t, notify.ActionHandler(h), actions.Handler(id), id)
		}
	})
}
