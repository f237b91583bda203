package alerting_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

const day = 24 * time.Hour

// idleDeal creates a qualification deal of owner last touched touchedAgo before now.
func (b *testBundle) idleDeal(t *testing.T, conn, stage, owner int64, touchedAgo time.Duration) int64 {
	t.Helper()
	return b.deal(t, deal{conn: conn, stage: stage, owner: owner, amount: money(20000), created: b.now.Add(-90 * day),
		stageEntered: b.now.Add(-touchedAgo - day), lastActivity: b.now.Add(-touchedAgo), closeDate: b.now.AddDate(0, 2, 0)})
}

func TestAlertLifecycle(t *testing.T) {
	t.Parallel()

	setupIdle := func(t *testing.T) (*testBundle, int64, int64, int64) {
		t.Helper()
		b := setup(t)
		b.rules(t, onlyRules("idle"))
		conn := b.established(t, "crm", "hubspot", nil)
		ana := b.owner(t, conn, "ana@example.com", ownerOpts{})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		return b, conn, ana, qual
	}

	t.Run("SnoozedStaysQuietUntilTheSnoozeEnds", func(t *testing.T) {
		t.Parallel()
		b, conn, ana, qual := setupIdle(t)
		b.idleDeal(t, conn, qual, ana, 9*day)
		b.detect(t)
		alerts := b.alerts(t, "")
		require.Len(t, alerts, 1)
		require.Len(t, b.notifications(t), 1)

		msg := b.press(t, alerting.ActionSnooze3Days, alerts[0].ID)
		require.Contains(t, msg.Context, "snoozed until 2026-06-13 12:00 UTC by <@U123>")
		require.Len(t, msg.Actions, 1, "a snoozed alert keeps only Acknowledge")

		for _, step := range []time.Duration{day, day, 23 * time.Hour} {
			b.advance(t, step, conn)
			rep := b.detect(t)
			require.Zero(t, rep.Told, "quiet while snoozed (%s)", b.now)
			require.Equal(t, "snoozed", b.alerts(t, "")[0].State)
		}
		b.advance(t, 2*time.Hour, conn)
		rep := b.detect(t)
		require.Equal(t, 1, rep.Told)
		require.Equal(t, "snooze_ended", rep.Alerts[0].Reason)
		got := b.alerts(t, "")[0]
		require.Equal(t, "open", got.State)
		require.Equal(t, 2, got.NotifyCount)
		sent := b.newNotifications(t, 1)
		require.Len(t, sent, 1)
		require.Equal(t, got.ID, sent[0].AlertID)
		require.Contains(t, sent[0].Message.Context, "sent again: the snooze ended")
		require.Contains(t, sent[0].Message.Summary, "No touch for 12 days")

		b.advance(t, time.Hour, conn)
		require.Zero(t, b.detect(t).Told, "told once after the snooze, then quiet again")
	})

	t.Run("SeverityRiseAndCooldownTellAgain", func(t *testing.T) {
		t.Parallel()
		b, conn, ana, qual := setupIdle(t)
		b.idleDeal(t, conn, qual, ana, 8*day)
		b.detect(t)
		require.Len(t, b.notifications(t), 1)

		b.advance(t, 6*day, conn)
		require.Zero(t, b.detect(t).Told, "within the 7-day cooldown")
		b.advance(t, day+time.Hour, conn)
		rep := b.detect(t)
		require.Equal(t, 1, rep.Told)
		require.Equal(t, "cooldown_ended", rep.Alerts[0].Reason)

		b.advance(t, 2*day, conn)
		require.Zero(t, b.detect(t).Told)
		// The CRM now reports the last activity 32 days ago: stalled, within the cooldown.
		b.exec(t, `UPDATE deals SET last_activity_at = $1, stage_entered_at = $1`, b.now.Add(-32*day))
		rep = b.detect(t)
		require.Equal(t, 1, rep.Told)
		require.Equal(t, "severity_rose", rep.Alerts[0].Reason)
		require.Equal(t, alerting.SeverityCritical, rep.Alerts[0].Severity)
		sent := b.newNotifications(t, 2)
		require.Len(t, sent, 1)
		require.Equal(t, "Critical · Idle deal: "+rep.Alerts[0].Subject, sent[0].Message.Title)
		require.Contains(t, sent[0].Message.Context, "sent again: severity rose")
		require.Len(t, b.alerts(t, ""), 1, "the same alert, told again")
	})

	t.Run("AcknowledgedStaysQuietUntilSeverityRises", func(t *testing.T) {
		t.Parallel()
		b, conn, ana, qual := setupIdle(t)
		b.idleDeal(t, conn, qual, ana, 8*day)
		b.detect(t)
		a := b.alerts(t, "")[0]
		msg := b.press(t, alerting.ActionAcknowledge, a.ID)
		require.Empty(t, msg.Actions)
		require.Contains(t, msg.Context, "acknowledged by <@U123>")
		require.Equal(t, "acknowledged", b.alerts(t, "")[0].State)

		b.advance(t, 10*day, conn)
		require.Zero(t, b.detect(t).Told, "no cooldown reminders once acknowledged")
		b.advance(t, 13*day, conn) // 31 days
		rep := b.detect(t)
		require.Equal(t, 1, rep.Told)
		require.Equal(t, "severity_rose", rep.Alerts[0].Reason)
		require.Equal(t, "open", b.alerts(t, "")[0].State)
	})

	t.Run("RecurrenceIsANewEpisode", func(t *testing.T) {
		t.Parallel()
		b, conn, ana, qual := setupIdle(t)
		id := b.idleDeal(t, conn, qual, ana, 8*day)
		b.detect(t)
		first := b.alerts(t, "")[0]

		b.advance(t, time.Hour, conn)
		b.exec(t, `UPDATE deals SET last_activity_at = $2 WHERE id = $1`, id, b.now)
		rep := b.detect(t)
		require.Equal(t, 1, rep.Resolved)
		require.Zero(t, rep.Told)

		b.advance(t, 8*day, conn)
		rep = b.detect(t)
		require.Equal(t, 1, rep.Opened)
		require.Equal(t, 1, rep.Told)
		alerts := b.alerts(t, "")
		require.Len(t, alerts, 2)
		require.Equal(t, "resolved", alerts[0].State)
		require.Equal(t, "cleared", alerts[0].Resolution)
		require.Equal(t, "open", alerts[1].State)
		require.NotEqual(t, first.Fingerprint, alerts[1].Fingerprint, "each episode has its own fingerprint")
		require.Len(t, b.notifications(t), 2)
	})

	t.Run("StageChangeTellsAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.rules(t, onlyRules("past_close_date"))
		conn := b.established(t, "crm", "pipedrive", nil)
		ana := b.owner(t, conn, "ana@example.com", ownerOpts{})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		prop := b.stage(t, conn, "Proposal", "proposal", 0)
		id := b.deal(t, deal{conn: conn, stage: qual, owner: ana, amount: money(1000), created: b.now.Add(-60 * day),
			closeDate: b.now.AddDate(0, 0, -3)})
		b.detect(t)
		b.advance(t, time.Hour, conn)
		b.exec(t, `UPDATE deals SET stage_id = $2 WHERE id = $1`, id, prop)
		rep := b.detect(t)
		require.Equal(t, 1, rep.Told)
		require.Equal(t, "stage_changed", rep.Alerts[0].Reason)
		require.Len(t, b.alerts(t, ""), 1)
	})

	t.Run("ReassignedDealMovesItsAlert", func(t *testing.T) {
		t.Parallel()
		b, conn, ana, qual := setupIdle(t)
		bob := b.owner(t, conn, "bob@example.com", ownerOpts{})
		id := b.idleDeal(t, conn, qual, ana, 8*day)
		b.detect(t)
		b.advance(t, time.Hour, conn)
		b.exec(t, `UPDATE deals SET owner_id = $2 WHERE id = $1`, id, bob)
		rep := b.detect(t)
		require.Equal(t, 1, rep.Updated)
		require.Zero(t, rep.Opened)
		require.Len(t, b.alerts(t, ""), 1, "the same alert")
		require.Len(t, b.alerts(t, "owner_id = $1 AND state = 'open'", bob), 1, "now the new owner's")
	})

	t.Run("ClosedDealResolvesWithReason", func(t *testing.T) {
		t.Parallel()
		b, conn, ana, qual := setupIdle(t)
		won := b.idleDeal(t, conn, qual, ana, 8*day)
		lost := b.idleDeal(t, conn, qual, ana, 9*day)
		gone := b.idleDeal(t, conn, qual, ana, 10*day)
		b.detect(t)
		b.exec(t, `UPDATE deals SET is_closed = true, is_won = true, closed_at = $2 WHERE id = $1`, won, b.now)
		b.exec(t, `UPDATE deals SET is_closed = true, closed_at = $2 WHERE id = $1`, lost, b.now)
		b.exec(t, `UPDATE deals SET deleted_at = $2 WHERE id = $1`, gone, b.now)
		require.Equal(t, 3, b.detect(t).Resolved)
		got := map[int64]string{}
		for _, a := range b.alerts(t, "") {
			got[a.DealID] = a.Resolution
		}
		require.Equal(t, map[int64]string{won: "deal_won", lost: "deal_lost", gone: "deal_deleted"}, got)
	})

	t.Run("DisabledRuleResolvesItsAlerts", func(t *testing.T) {
		t.Parallel()
		b, conn, ana, qual := setupIdle(t)
		b.idleDeal(t, conn, qual, ana, 8*day)
		b.detect(t)
		b.rules(t, onlyRules("stuck_in_stage"))
		require.Equal(t, 1, b.detect(t).Resolved)
		require.Equal(t, "rule_disabled", b.alerts(t, "")[0].Resolution)
	})
}

func TestFirstSyncIsSilent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules(t, onlyRules("idle", "past_close_date"))
	conn := b.connection(t, "fresh-crm", "hubspot", nil)
	lee := b.owner(t, conn, "lee@example.com", ownerOpts{})
	kim := b.owner(t, conn, "kim@example.com", ownerOpts{})
	qual := b.stage(t, conn, "Qualified", "qualification", 0)
	var reps []int64
	for i, m := range []int64{lee, lee, kim, kim, 0} {
		reps = append(reps, b.owner(t, conn, "rep"+string(rune('a'+i))+"@example.com", ownerOpts{manager: m}))
	}
	for i, rep := range reps {
		for j := range 3 {
			b.idleDeal(t, conn, qual, rep, time.Duration(8+i+j)*day)
		}
	}

	rep := b.detect(t)
	require.True(t, rep.Scopes[0].Baseline)
	require.Equal(t, 15, rep.Opened, "existing conditions are recorded as open alerts")
	for _, a := range b.alerts(t, "") {
		require.Equal(t, "open", a.State)
		require.Equal(t, "baseline", a.NotifiedVia)
	}
	sent := b.notifications(t)
	require.Len(t, sent, 2, "one summary per manager, nothing per deal")
	got := map[string]int{}
	for _, n := range sent {
		require.Equal(t, "digest", n.Kind)
		require.Zero(t, n.AlertID)
		got[n.Recipient] = len(n.Message.Items)
		require.Contains(t, n.Message.Title, "6 alerts already need attention")
	}
	require.Equal(t, map[string]int{"lee@example.com": 6, "kim@example.com": 6}, got,
		"the rep without a manager is recorded but summarised to nobody")

	b.advance(t, time.Hour, conn)
	require.Zero(t, b.detect(t).Told, "the baseline is not told again")
	b.idleDeal(t, conn, qual, reps[0], 8*day)
	rep = b.detect(t)
	require.False(t, rep.Scopes[0].Baseline)
	require.Equal(t, 1, rep.Told)
	last := b.newNotifications(t, 2)
	require.Len(t, last, 1)
	require.Equal(t, "repa@example.com", last[0].Recipient, "new crossings reach the owner")
	require.Equal(t, "alert", last[0].Kind)
}

func TestDataQualityGate(t *testing.T) {
	t.Parallel()

	setupGate := func(t *testing.T) (*testBundle, int64, int64) {
		t.Helper()
		b := setup(t)
		b.rules(t, onlyRules("idle"))
		conn := b.established(t, "crm", "hubspot", nil)
		ana := b.owner(t, conn, "ana@example.com", ownerOpts{})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		b.idleDeal(t, conn, qual, ana, 8*day)
		return b, conn, qual
	}

	tests := map[string]struct {
		spoil      func(t *testing.T, b *testBundle, conn int64)
		wantReason string
	}{
		"StaleSync": {func(t *testing.T, b *testBundle, conn int64) {
			b.exec(t, `UPDATE connections SET last_synced_at = $2 WHERE id = $1`, conn, b.now.Add(-2*time.Hour))
		}, "last successful sync 2h0m0s ago, older than its freshness limit 45m0s"},
		"LastSyncFailed": {func(t *testing.T, b *testBundle, conn int64) {
			b.exec(t, `INSERT INTO sync_runs (connection_id, stream, started_at, finished_at, status) VALUES ($1, 'deals', $2, $2, 'succeeded')`,
				conn, b.now.Add(-time.Hour))
			b.exec(t, `INSERT INTO sync_runs (connection_id, stream, started_at, finished_at, status, error) VALUES ($1, 'activities', $2, $2, 'failed', 'HTTP 500 from the vendor')`,
				conn, b.now.Add(-10*time.Minute))
		}, "the last activities sync failed at 2026-06-10T11:50:00Z: HTTP 500 from the vendor"},
		"NeedsReauth": {func(t *testing.T, b *testBundle, conn int64) {
			b.exec(t, `UPDATE connections SET status = 'needs_reauth', status_reason = 'token revoked' WHERE id = $1`, conn)
		}, "connection is needs reauth: token revoked"},
		"FirstSyncOfAStreamUnderWay": {func(t *testing.T, b *testBundle, conn int64) {
			b.exec(t, `INSERT INTO sync_runs (connection_id, stream, started_at, finished_at, status) VALUES ($1, 'deals', $2, $2, 'succeeded')`,
				conn, b.now.Add(-time.Hour))
			b.exec(t, `INSERT INTO sync_runs (connection_id, stream, started_at, status) VALUES ($1, 'activities', $2, 'running')`,
				conn, b.now.Add(-50*time.Minute))
		}, "the first activities sync has not finished yet"},
		"NeverSynced": {func(t *testing.T, b *testBundle, conn int64) {
			b.exec(t, `UPDATE connections SET last_synced_at = NULL WHERE id = $1`, conn)
		}, "never synced"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, conn, _ := setupGate(t)
			tt.spoil(t, b, conn)
			rep := b.detect(t)
			require.False(t, rep.Scopes[0].Evaluated)
			require.Equal(t, tt.wantReason, rep.Scopes[0].Reason)
			require.False(t, rep.Scopes[1].Evaluated, "org rules wait for every connection with deals")
			require.Empty(t, b.alerts(t, ""))
			require.Empty(t, b.notifications(t))
		})
	}

	t.Run("OrgRulesWaitForTheFirstSyncs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.rules(t, onlyRules("coverage_shortfall"))
		b.exec(t, `INSERT INTO targets (team, period_start, period_end, amount, currency) VALUES ('east', '2026-04-01', '2026-06-30', 100000, 'USD')`)

		rep := b.detect(t)
		require.False(t, rep.Scopes[len(rep.Scopes)-1].Evaluated, "no connection at all: no totals to judge")
		require.Equal(t, "no connection has synced yet", rep.Scopes[len(rep.Scopes)-1].Reason)

		conn := b.connection(t, "crm", "hubspot", nil)
		b.exec(t, `UPDATE connections SET last_synced_at = NULL WHERE id = $1`, conn)
		rep = b.detect(t)
		require.False(t, rep.Scopes[len(rep.Scopes)-1].Evaluated, "a CRM before its first sync holds no deals yet, but will")
		require.Empty(t, b.alerts(t, ""), "an empty pipeline before the first sync is not a coverage shortfall")
		require.Empty(t, b.notifications(t))

		b.synced(t, conn)
		rep = b.detect(t)
		require.True(t, rep.Scopes[len(rep.Scopes)-1].Evaluated)
		require.Len(t, b.alerts(t, "rule = 'coverage_shortfall'"), 1, "after the sync an empty pipeline is a real shortfall")
	})

	t.Run("FailedSyncFollowedBySuccessIsFine", func(t *testing.T) {
		t.Parallel()
		b, conn, _ := setupGate(t)
		b.exec(t, `INSERT INTO sync_runs (connection_id, stream, started_at, finished_at, status) VALUES ($1, 'deals', $2, $2, 'failed')`,
			conn, b.now.Add(-time.Hour))
		b.exec(t, `INSERT INTO sync_runs (connection_id, stream, started_at, finished_at, status) VALUES ($1, 'deals', $2, $2, 'succeeded')`,
			conn, b.now.Add(-10*time.Minute))
		require.Equal(t, 1, b.detect(t).Opened)
	})

	t.Run("StaleDataNeitherOpensNorResolves", func(t *testing.T) {
		t.Parallel()
		b, conn, _ := setupGate(t)
		b.detect(t)
		require.Len(t, b.alerts(t, "state = 'open'"), 1)
		b.advance(t, 2*time.Hour) // no sync since
		b.exec(t, `UPDATE deals SET last_activity_at = $1`, b.now)
		rep := b.detect(t)
		require.Zero(t, rep.Resolved, "an absent condition in stale data is not a recovery")
		require.Len(t, b.alerts(t, "state = 'open'"), 1)
		b.synced(t, conn)
		require.Equal(t, 1, b.detect(t).Resolved)
	})
}
