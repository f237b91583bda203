package alerting_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

func TestRouting(t *testing.T) {
	t.Parallel()

	t.Run("DeactivatedOwnerGoesToManager", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.rules(t, onlyRules("idle"))
		conn := b.established(t, "crm", "hubspot", nil)
		lee := b.owner(t, conn, "lee@example.com", ownerOpts{})
		gone := b.owner(t, conn, "gone@example.com", ownerOpts{manager: lee, inactive: true})
		deleted := b.owner(t, conn, "deleted@example.com", ownerOpts{manager: lee, deletedAt: b.now.Add(-day)})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		b.idleDeal(t, conn, qual, gone, 8*day)
		b.idleDeal(t, conn, qual, deleted, 9*day)
		b.detect(t)
		sent := b.notifications(t)
		require.Len(t, sent, 2)
		for _, n := range sent {
			require.Equal(t, "lee@example.com", n.Recipient)
			require.Equal(t, "dm", n.Channel)
		}
	})

	t.Run("FiveAlertsForOneRecipientBecomeOneDigest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.rules(t, onlyRules("idle"))
		conn := b.established(t, "crm", "hubspot", map[string]any{"options": map[string]string{"portal_id": "77"}})
		ana := b.owner(t, conn, "ana@example.com", ownerOpts{})
		bob := b.owner(t, conn, "bob@example.com", ownerOpts{})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		for i := range 5 {
			b.deal(t, deal{conn: conn, stage: qual, owner: ana, name: "Ana " + string(rune('A'+i)), amount: money(float64(1000 * (i + 1))),
				created: b.now.Add(-90 * day), lastActivity: b.now.Add(-time.Duration(8+i) * day), closeDate: b.now.AddDate(0, 1, 0)})
		}
		b.idleDeal(t, conn, qual, bob, 8*day)
		b.idleDeal(t, conn, qual, bob, 9*day)
		rep := b.detect(t)
		require.Equal(t, 7, rep.Told)
		perRecipient := map[string][]sent{}
		for _, n := range b.notifications(t) {
			perRecipient[n.Recipient] = append(perRecipient[n.Recipient], n)
		}
		require.Len(t, perRecipient["ana@example.com"], 1)
		digest := perRecipient["ana@example.com"][0]
		require.Equal(t, "digest", digest.Kind)
		require.Equal(t, "5 alerts need attention", digest.Message.Title)
		var texts []string
		for _, it := range digest.Message.Items {
			require.Equal(t, "Idle deal", it.Group)
			require.True(t, strings.HasPrefix(it.URL, "https://app.hubspot.com/contacts/77/record/0-3/d-"), it.URL)
			texts = append(texts, strings.SplitN(it.Text, " · ", 2)[0])
		}
		require.Equal(t, []string{"Ana E", "Ana D", "Ana C", "Ana B", "Ana A"}, texts, "largest amount first")
		require.Len(t, perRecipient["bob@example.com"], 2, "below the threshold each alert is its own message")
		for _, n := range perRecipient["bob@example.com"] {
			require.Equal(t, "alert", n.Kind)
		}
	})

	t.Run("EscalationIntoTheManagersDailyDigest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.rules(t, onlyRules("idle"))
		b.now = time.Date(2026, 6, 8, 9, 0, 0, 0, time.UTC) // Monday
		conn := b.established(t, "crm", "hubspot", nil)
		lee := b.owner(t, conn, "lee@example.com", ownerOpts{timezone: "America/New_York"})
		ana := b.owner(t, conn, "ana@example.com", ownerOpts{manager: lee})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		left := b.idleDeal(t, conn, qual, ana, 8*day)
		acted := b.idleDeal(t, conn, qual, ana, 9*day)
		b.detect(t)
		require.Len(t, b.notifications(t), 2)
		for _, a := range b.alerts(t, "deal_id = $1", acted) {
			b.press(t, alerting.ActionSnooze7Days, a.ID)
		}

		// Wednesday 09:00 UTC is 05:00 in New York: two business days have passed, but the
		// manager's digest waits for 08:30 their time.
		b.advance(t, 2*day, conn)
		rep := b.detect(t)
		require.Zero(t, rep.Escalated)
		b.advance(t, 4*time.Hour, conn) // 09:00 in New York
		rep = b.detect(t)
		require.Equal(t, 1, rep.Escalated)
		sent := b.newNotifications(t, 2)
		require.Len(t, sent, 1)
		require.Equal(t, "lee@example.com", sent[0].Recipient)
		require.Equal(t, "digest", sent[0].Kind)
		require.Contains(t, sent[0].Message.Title, "Daily pipeline digest, Wed 10 Jun: 1 alert needs a manager's look")
		require.Len(t, sent[0].Message.Items, 1)
		require.Contains(t, sent[0].Message.Items[0].Text, "ana")

		require.Len(t, b.alerts(t, "escalated_at IS NOT NULL AND deal_id = $1", left), 1)
		require.Empty(t, b.alerts(t, "escalated_at IS NOT NULL AND deal_id = $1", acted), "a snoozed alert is not left open")
		b.advance(t, time.Hour, conn)
		require.Zero(t, b.detect(t).Escalated, "one digest a day, each alert once")

		// An alert told on Wednesday afternoon is left open by Friday afternoon.
		b.idleDeal(t, conn, qual, ana, 8*day)
		b.detect(t)
		b.advance(t, 2*day, conn)
		rep = b.detect(t)
		require.Equal(t, 1, rep.Escalated)
		require.Len(t, b.alerts(t, "escalated_at IS NOT NULL"), 2)
	})

	t.Run("CoverageShortfallToTheConfiguredChannel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.rules(t, onlyRules("coverage_shortfall"))
		b.setting(t, "routing", func() config.Routing { r := config.DefaultRouting(); r.Channel = "#revenue"; return r }())
		conn := b.established(t, "crm", "hubspot", nil)
		ana := b.owner(t, conn, "ana@example.com", ownerOpts{})
		qual := b.stage(t, conn, "Qualified", "qualification", 0)
		b.exec(t, `INSERT INTO targets (owner_email, period_start, period_end, amount, currency) VALUES ('ANA@example.com', '2026-04-01', '2026-06-30', 100000, 'USD')`)
		b.exec(t, `INSERT INTO targets (team, period_start, period_end, amount, currency) VALUES ('nobody', '2026-04-01', '2026-06-30', 100000, 'USD')`)
		// Won 40k this quarter; 60k remain. Open: 90k closing this quarter (1.5×). Trailing
		// year: 1 won of 4 closed → 25 % → 4× needed.
		b.deal(t, deal{conn: conn, stage: qual, owner: ana, amount: money(40000), closed: true, won: true,
			closedAt: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC), closeDate: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)})
		b.deal(t, deal{conn: conn, stage: qual, owner: ana, amount: money(90000), closeDate: time.Date(2026, 6, 20, 0, 0, 0, 0, time.UTC),
			created: b.now.Add(-day), lastActivity: b.now, nextActivity: b.now.Add(day)})
		b.deal(t, deal{conn: conn, stage: qual, owner: ana, amount: money(500000), closeDate: time.Date(2026, 9, 20, 0, 0, 0, 0, time.UTC)})
		for i := range 4 {
			b.deal(t, deal{conn: conn, stage: qual, owner: ana, amount: money(1000), closed: true, won: i == 0,
				closedAt: time.Date(2025, 6, 1+i, 0, 0, 0, 0, time.UTC)})
		}
		rep := b.detect(t)
		require.Equal(t, 2, rep.Told, "ana's target and the empty team's")
		titles := map[string]sent{}
		for _, n := range b.notifications(t) {
			require.Equal(t, "channel", n.Channel)
			require.Equal(t, "#revenue", n.Recipient)
			titles[n.Message.Title] = n
		}
		require.Contains(t, titles, "Critical · Coverage shortfall: team nobody")
		msg := titles["Critical · Coverage shortfall: ana@example.com"].Message
		require.Contains(t, msg.Summary, "covers 1.5× of the remaining target; 4× is needed (trailing win rate 25% of 4 closed deals)")
		a := b.alerts(t, "rule = 'coverage_shortfall' AND details->'coverage'->>'scope' = 'owner'")
		require.Len(t, a, 1)
		c := a[0].Details.Coverage
		require.Equal(t, "60000", c.Remaining.String())
		require.Equal(t, "240000", c.PipelineNeeded.String())
		require.Equal(t, "150000", c.Shortfall.String())
	})

	t.Run("LeadVelocityDrop", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.rules(t, onlyRules("lead_velocity_drop"))
		b.setting(t, "routing", func() config.Routing { r := config.DefaultRouting(); r.Channel = "#marketing"; return r }())
		conn := b.established(t, "crm", "hubspot", nil)
		for i := range 30 {
			at := b.now.Add(-time.Duration(31+i%29) * day) // 30 in the window before
			if i < 12 {
				at = b.now.Add(-time.Duration(1+i) * day) // 12 in the last 30 days
			}
			b.exec(t, `INSERT INTO leads (connection_id, external_id, status, sql_at) VALUES ($1, $2, 'sql', $3)`, conn, "l"+string(rune('a'+i)), at)
		}
		for i := range 18 {
			b.exec(t, `INSERT INTO leads (connection_id, external_id, status, sql_at) VALUES ($1, $2, 'sql', $3)`,
				conn, "m"+string(rune('a'+i)), b.now.Add(-time.Duration(35+i)*day))
		}
		rep := b.detect(t)
		require.Equal(t, 1, rep.Told)
		sent := b.notifications(t)
		require.Equal(t, "#marketing", sent[len(sent)-1].Recipient)
		require.Equal(t, "12 SQLs in the last 30 days, down 67% from 36 in the 30 days before.", sent[len(sent)-1].Message.Summary)
	})
}
