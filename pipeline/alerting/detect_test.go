package alerting_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// generated is one generated deal with everything the expectations are computed from.
type generated struct {
	id                                int64
	stage                             string // canonical; "" = unmapped
	owner                             string
	amount                            float64
	created, stageEntered, last, next time.Time
	closeDate                         time.Time
	pushes                            int
	pushedOut                         bool
}

// businessHours counts the whole hours between from and to that start on Monday to
// Friday (UTC): the brute-force reference for business-day thresholds.
func businessHours(from, to time.Time) int {
	n := 0
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		if wd := h.Weekday(); wd != time.Saturday && wd != time.Sunday {
			n++
		}
	}
	return n
}

// expectedAlerts computes, from the generated deals alone, which rules must fire with
// which severity under the default rules (docs/pipeline-analytics.md §6).
func expectedAlerts(now time.Time, deals []generated) map[string]string {
	idleDays := map[string]int{"qualification": 7, "needs_assessment": 10, "lead_generation": 14, "": 14}
	idleBusinessDays := map[string]int{"proposal": 5, "negotiation": 3, "closing": 3}
	nextStepStages := []string{"qualification", "needs_assessment", "proposal", "negotiation", "closing"}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	want := map[string]string{}
	for _, d := range deals {
		key := func(rule string) string { return fmt.Sprintf("%s/%d", rule, d.id) }
		touch := d.created
		for _, t := range []time.Time{d.last, d.stageEntered} {
			if t.After(touch) {
				touch = t
			}
		}
		idle := false
		if n, ok := idleBusinessDays[d.stage]; ok {
			idle = businessHours(touch, now) > 24*n
		} else {
			idle = now.Sub(touch) > time.Duration(idleDays[d.stage])*24*time.Hour
		}
		scheduled := !d.next.IsZero() && !d.next.Before(now)
		if idle && d.amount != 0 && !scheduled {
			want[key("idle")] = "warning"
			if now.Sub(touch) > 30*24*time.Hour {
				want[key("idle")] = "critical"
			}
		}
		if !d.stageEntered.IsZero() && d.amount != 0 && now.Sub(d.stageEntered) > 30*24*time.Hour {
			want[key("stuck_in_stage")] = "warning"
			if now.Sub(d.stageEntered) > 45*24*time.Hour {
				want[key("stuck_in_stage")] = "critical"
			}
		}
		if d.closeDate.Before(today) {
			want[key("past_close_date")] = "warning"
			if d.closeDate.Before(today.AddDate(0, 0, -30)) {
				want[key("past_close_date")] = "critical"
			}
		}
		quarterEnd := time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
		if d.pushes >= 3 {
			want[key("close_date_slipped")] = "critical"
		} else if d.pushedOut && d.closeDate.After(quarterEnd) {
			want[key("close_date_slipped")] = "warning"
		}
		noNext := d.next.IsZero() || d.next.Before(now) || d.next.After(now.Add(14*24*time.Hour))
		entered := d.stageEntered
		if entered.IsZero() {
			entered = d.created
		}
		if slices.Contains(nextStepStages, d.stage) && noNext && entered.Before(now.Add(-24*time.Hour)) {
			want[key("no_next_step")] = "warning"
		}
	}
	return want
}

func TestDetectGeneratedPipeline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.now
	conn := b.established(t, "gen", "pipedrive", map[string]any{"schedule": "15m", "options": map[string]string{"company_domain": "acme"}})

	lee := b.owner(t, conn, "lee@example.com", ownerOpts{})
	kim := b.owner(t, conn, "kim@example.com", ownerOpts{})
	reps := map[string]int64{
		"ana@example.com": b.owner(t, conn, "ana@example.com", ownerOpts{manager: lee}),
		"bob@example.com": b.owner(t, conn, "bob@example.com", ownerOpts{manager: lee}),
		"cy@example.com":  b.owner(t, conn, "cy@example.com", ownerOpts{manager: kim}),
		// A rep who left: their deals' alerts go to their manager.
		"gone@example.com": b.owner(t, conn, "gone@example.com", ownerOpts{manager: kim, inactive: true}),
		// A rep with two deals only, so their alerts arrive one by one.
		"dee@example.com": b.owner(t, conn, "dee@example.com", ownerOpts{manager: kim}),
	}
	recipientOf := map[string]string{
		"ana@example.com": "ana@example.com", "bob@example.com": "bob@example.com", "cy@example.com": "cy@example.com",
		"gone@example.com": "kim@example.com", "dee@example.com": "dee@example.com",
	}
	stages := map[string]int64{"": b.stage(t, conn, "Triage", "", 0)}
	for _, s := range []string{"lead_generation", "qualification", "needs_assessment", "proposal", "negotiation", "closing"} {
		stages[s] = b.stage(t, conn, s, s, 0)
	}
	stageNames := []string{"", "lead_generation", "qualification", "needs_assessment", "proposal", "negotiation", "closing"}

	rng := rand.New(rand.NewPCG(7, 11))
	hoursAgo := func(lo, hi int) time.Time { return now.Add(-time.Duration(lo+rng.IntN(hi-lo)) * time.Hour) }
	var deals []generated
	owners := []string{"ana@example.com", "bob@example.com", "cy@example.com", "gone@example.com"}
	for i := range 122 {
		g := generated{stage: stageNames[rng.IntN(len(stageNames))], owner: owners[i%len(owners)]}
		if i >= 120 {
			g.owner = "dee@example.com"
		}
		if rng.IntN(10) > 0 {
			g.amount = float64(1000 + rng.IntN(99000))
		}
		g.created = hoursAgo(24*60, 24*120)
		g.stageEntered = hoursAgo(1, 24*50)
		if rng.IntN(5) > 0 {
			g.last = hoursAgo(1, 24*40)
		}
		switch p := rng.IntN(20); {
		case p < 8:
		case p < 12:
			g.next = hoursAgo(1, 24*10)
		case p < 17:
			g.next = now.Add(time.Duration(1+rng.IntN(24*13)) * time.Hour)
		default:
			g.next = now.Add(time.Duration(24*15+rng.IntN(24*25)) * time.Hour)
		}
		g.closeDate = time.Date(2026, 6, 10+rng.IntN(165)-45, 0, 0, 0, 0, time.UTC)
		if i >= 120 { // dee's deals: one idle without a next step, one clean
			g.stage, g.amount, g.stageEntered, g.last, g.next = "qualification", 5000, now.AddDate(0, 0, -12), now.AddDate(0, 0, -9), time.Time{}
			g.closeDate = time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
			if i == 121 {
				g.last, g.next = now.Add(-time.Hour), now.AddDate(0, 0, 2)
			}
		}
		amount := money(g.amount)
		g.id = b.deal(t, deal{conn: conn, stage: stages[g.stage], owner: reps[g.owner], amount: amount, closeDate: g.closeDate,
			created: g.created, stageEntered: g.stageEntered, lastActivity: g.last, nextActivity: g.next})
		if i < 120 && rng.IntN(6) == 0 {
			// Close-date pushes: 1 to 4 of them, the latest out of this quarter for most.
			g.pushes = 1 + rng.IntN(4)
			g.closeDate = time.Date(2026, 7, 1+rng.IntN(60), 0, 0, 0, 0, time.UTC)
			b.exec(t, `UPDATE deals SET close_date = $2 WHERE id = $1`, g.id, g.closeDate)
			for k := range g.pushes {
				from := g.closeDate.AddDate(0, 0, -20*(g.pushes-k))
				to := g.closeDate.AddDate(0, 0, -20*(g.pushes-k-1))
				changed := now.AddDate(0, 0, -5*(g.pushes-k))
				if from.Month() <= 6 && !to.Before(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)) && from.After(time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)) {
					g.pushedOut = true
				}
				b.exec(t, `INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at) VALUES ($1, 'close_date', $2, $3, $4)`,
					g.id, from.Format(time.DateOnly), to.Format(time.DateOnly), changed)
			}
		}
		deals = append(deals, g)
	}
	want := expectedAlerts(now, deals)
	require.Greater(t, len(want), 60, "the generated pipeline exercises every rule")
	for _, rule := range []string{"idle", "stuck_in_stage", "past_close_date", "close_date_slipped", "no_next_step"} {
		for _, sev := range []string{"warning", "critical"} {
			if rule == "no_next_step" && sev == "critical" {
				continue
			}
			n := 0
			for k, v := range want {
				if v == sev && len(k) > len(rule) && k[:len(rule)+1] == rule+"/" {
					n++
				}
			}
			require.Positive(t, n, "no %s %s alert in the generated pipeline", sev, rule)
		}
	}
	before := len(b.notifications(t))

	rep := b.detect(t)

	t.Run("ExactlyTheExpectedAlerts", func(t *testing.T) {
		got := map[string]string{}
		for _, a := range b.alerts(t, "state = 'open'") {
			key := fmt.Sprintf("%s/%d", a.Rule, a.DealID)
			_, dup := got[key]
			require.False(t, dup, "%s alerted twice", key)
			got[key] = a.Severity
		}
		require.Equal(t, want, got)
		require.Equal(t, len(want), rep.Opened)
	})

	t.Run("EachToldOnceToItsRecipient", func(t *testing.T) {
		perRecipient := map[string][]alertRow{}
		for _, a := range b.alerts(t, "state = 'open'") {
			require.Equal(t, 1, a.NotifyCount, "alert %d", a.ID)
			require.NotZero(t, a.Notification, "alert %d", a.ID)
			perRecipient[a.Recipient] = append(perRecipient[a.Recipient], a)
		}
		wantPer := map[string]int{}
		for _, d := range deals {
			for _, rule := range []string{"idle", "stuck_in_stage", "past_close_date", "close_date_slipped", "no_next_step"} {
				if _, ok := want[fmt.Sprintf("%s/%d", rule, d.id)]; ok {
					wantPer[recipientOf[d.owner]]++
				}
			}
		}
		gotPer := map[string]int{}
		for r, as := range perRecipient {
			gotPer[r] = len(as)
		}
		require.Equal(t, wantPer, gotPer)
		require.Equal(t, 2, wantPer["dee@example.com"], "dee's two alerts come one by one")

		msgs := b.newNotifications(t, before)
		byRecipient := map[string][]sent{}
		for _, n := range msgs {
			byRecipient[n.Recipient] = append(byRecipient[n.Recipient], n)
		}
		for r, as := range perRecipient {
			ns := byRecipient[r]
			if len(as) >= 5 {
				require.Len(t, ns, 1, "%s gets one digest for %d alerts", r, len(as))
				require.Equal(t, "digest", ns[0].Kind)
				for _, a := range as {
					require.Equal(t, "digest", a.NotifiedVia)
					require.Equal(t, ns[0].ID, a.Notification)
				}
				continue
			}
			require.Len(t, ns, len(as), "%s gets one message per alert", r)
			for i, a := range as {
				require.Equal(t, "alert", ns[i].Kind)
				require.Equal(t, a.ID, ns[i].AlertID)
				require.Equal(t, "dm", a.NotifiedVia)
				require.NotNil(t, ns[i].Message.Link)
				require.Contains(t, ns[i].Message.Link.URL, "https://acme.pipedrive.com/deal/")
			}
		}
		require.NotContains(t, byRecipient, "gone@example.com", "a deactivated rep is never messaged")
		require.Len(t, b.ins.jobs, len(b.notifications(t)), "every notification has its delivery job")
	})

	t.Run("SecondDetectTellsNothingNew", func(t *testing.T) {
		n := len(b.notifications(t))
		rep := b.detect(t)
		require.Zero(t, rep.Opened)
		require.Zero(t, rep.Resolved)
		require.Zero(t, rep.Told)
		require.Len(t, b.notifications(t), n)
	})

	t.Run("RecoveredDealResolves", func(t *testing.T) {
		var idle alertRow
		for _, a := range b.alerts(t, "state = 'open' AND rule = 'idle'") {
			idle = a
			break
		}
		require.NotZero(t, idle.ID)
		n := len(b.notifications(t))
		b.exec(t, `UPDATE deals SET last_activity_at = $2, next_activity_at = $3 WHERE id = $1`, idle.DealID, now.Add(-time.Hour), now.AddDate(0, 0, 2))
		rep := b.detect(t)
		require.GreaterOrEqual(t, rep.Resolved, 1)
		got := b.alerts(t, "id = $1", idle.ID)[0]
		require.Equal(t, "resolved", got.State)
		require.Equal(t, "cleared", got.Resolution)
		require.Len(t, b.notifications(t), n, "a resolution is not a message")
		require.Zero(t, rep.Opened)
	})
}
