package notify_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
	"github.com/pipewatch/pipewatch/jobs"
)

func dm(email, title string) jobs.Notification {
	return jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelDM, Recipient: email, Message: simpleMessage(title)}
}

func TestDeliver(t *testing.T) {
	t.Parallel()

	t.Run("DMByEmailWithCachedLookups", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		ana := b.fake.AddUser(slackfake.User{Name: "Ana", Email: "ana@example.com", TZ: "America/Los_Angeles"})
		b.addOwner(t, "Ana@Example.com", "", "", "")
		b.clock.Set(time.Date(2026, 11, 10, 17, 0, 0, 0, time.UTC)) // 09:00 in Los Angeles

		first := b.enqueue(t, dm("ana@example.com", "Stalled deal: Acme"))
		require.NoError(t, b.deliver(first))
		b.clock.Advance(2 * time.Second)
		second := b.enqueue(t, dm("ana@example.com", "Stalled deal: Beta"))
		require.NoError(t, b.deliver(second))

		posts := b.fake.Posts()
		require.Len(t, posts, 2)
		require.Equal(t, b.fake.DMChannel(ana.ID), posts[0].Channel)
		require.Contains(t, posts[0].Text, "Stalled deal: Acme")
		require.Equal(t, slack.MBTHeader, posts[0].Blocks.BlockSet[0].BlockType())
		row := b.row(t, first)
		require.Equal(t, "sent", row.State)
		require.Equal(t, posts[0].TS, row.SlackTS)
		require.Equal(t, posts[0].Channel, row.SlackChannelID)
		require.Equal(t, "slack", row.DeliveredVia)
		require.Equal(t, 1, row.Attempts)
		require.Equal(t, 1, b.fake.Calls("users.lookupByEmail"), "the second DM uses the cache")
		require.Equal(t, 1, b.fake.Calls("conversations.open"))
	})

	t.Run("KnownSlackUserNeedsNoLookup", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		ana := b.fake.AddUser(slackfake.User{Name: "Ana", Email: "ana@example.com"})
		b.addOwner(t, "ana@example.com", "America/New_York", ana.ID, "")
		id := b.enqueue(t, dm("ana@example.com", "Hello"))
		require.NoError(t, b.deliver(id))
		require.Len(t, b.fake.Posts(), 1)
		require.Zero(t, b.fake.Calls("users.lookupByEmail"))
	})

	t.Run("QuietHoursInRecipientZone", func(t *testing.T) {
		t.Parallel()
		la, err := time.LoadLocation("America/Los_Angeles")
		require.NoError(t, err)
		tests := []struct {
			name       string
			crmZone    string // owners.timezone
			slackZone  string // the Slack profile's tz
			email      string // ana is in team west (Los Angeles); bob is in no team
			enqueuedAt time.Time
			want       time.Time
		}{
			{"CRMZone", "America/Los_Angeles", "Asia/Tokyo", "bob@example.com",
				time.Date(2026, 11, 10, 23, 0, 0, 0, la), time.Date(2026, 11, 11, 8, 0, 0, 0, la)},
			{"SlackProfileZone", "", "America/Los_Angeles", "bob@example.com",
				time.Date(2026, 11, 10, 23, 0, 0, 0, la), time.Date(2026, 11, 11, 8, 0, 0, 0, la)},
			{"TeamZone", "", "", "ana@example.com",
				time.Date(2026, 11, 10, 23, 0, 0, 0, la), time.Date(2026, 11, 11, 8, 0, 0, 0, la)},
			{"OrgZone", "", "", "bob@example.com", // New York: 23:00 LA is 02:00 NY
				time.Date(2026, 11, 10, 23, 0, 0, 0, la), time.Date(2026, 11, 11, 5, 0, 0, 0, la)},
			{"FridayNightToMonday", "America/Los_Angeles", "", "bob@example.com",
				time.Date(2026, 11, 13, 23, 0, 0, 0, la), time.Date(2026, 11, 16, 8, 0, 0, 0, la)},
			{"TeamHoliday", "", "", "ana@example.com", // Thanksgiving is the team's holiday
				time.Date(2026, 11, 25, 23, 0, 0, 0, la), time.Date(2026, 11, 27, 8, 0, 0, 0, la)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, setupOpts{})
				b.fake.AddUser(slackfake.User{Email: tt.email, TZ: tt.slackZone})
				b.addOwner(t, tt.email, tt.crmZone, "", "")
				b.clock.Set(tt.enqueuedAt)
				id := b.enqueue(t, dm(tt.email, "Stalled deal"))

				err := b.deliver(id)
				var wait *notify.WaitError
				require.ErrorAs(t, err, &wait)
				require.True(t, tt.want.Equal(wait.Until), "want %s, got %s", tt.want, wait.Until.In(la))
				require.Empty(t, b.fake.Posts())
				row := b.row(t, id)
				require.Equal(t, "pending", row.State)
				require.True(t, tt.want.Equal(row.NotBefore), "the row says when it will go out")

				b.clock.Set(tt.want.Add(-time.Minute))
				require.ErrorAs(t, b.deliver(id), &wait, "still too early")
				b.clock.Set(tt.want)
				require.NoError(t, b.deliver(id))
				require.Len(t, b.fake.Posts(), 1)
				require.Equal(t, "sent", b.row(t, id).State)
			})
		}
	})

	t.Run("ChannelUsesTeamZone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddChannel(slackfake.Channel{Name: "west-deals", Member: true})
		b.clock.Set(time.Date(2026, 11, 10, 15, 0, 0, 0, time.UTC)) // 10:00 New York, 07:00 Los Angeles
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, AlertID: b.alert(t, "west"), Channel: notify.ChannelSlack,
			Recipient: "#west-deals", Message: simpleMessage("Coverage shortfall")})
		var wait *notify.WaitError
		require.ErrorAs(t, b.deliver(id), &wait)
		require.Equal(t, time.Date(2026, 11, 10, 16, 0, 0, 0, time.UTC), wait.Until.UTC())

		orgWide := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack,
			Recipient: "#west-deals-archive", Message: simpleMessage("Org digest")})
		b.fake.AddChannel(slackfake.Channel{Name: "west-deals-archive", Member: true})
		require.NoError(t, b.deliver(orgWide), "no team: the org zone (New York) is inside its window")
	})

	t.Run("RetryNeverPostsTwice", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("Digest")})
		for range 3 {
			require.NoError(t, b.deliver(id))
		}
		require.Len(t, b.fake.Posts(), 1)
		require.Equal(t, 1, b.row(t, id).Attempts)
	})

	t.Run("RateLimitWaitsForRetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		first := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("One")})
		second := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("Two")})
		require.NoError(t, b.deliver(first))

		var wait *notify.WaitError
		require.ErrorAs(t, b.deliver(second), &wait)
		require.Equal(t, b.clock.Now().Add(time.Second), wait.Until)
		row := b.row(t, second)
		require.Equal(t, "pending", row.State)
		require.Contains(t, row.Error, "rate limit")
		require.False(t, row.OutcomeUnknown, "a 429 posted nothing")

		b.clock.Advance(time.Second)
		require.NoError(t, b.deliver(second))
		require.Len(t, b.fake.Posts(), 2)
		require.Empty(t, b.row(t, second).Error)
	})

	t.Run("OutageDelaysThenDeliversOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		b.fake.SetOutage(b.clock.Now().Add(4*time.Minute), http.StatusServiceUnavailable)
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("Digest")})

		for range 4 {
			err := b.deliver(id)
			require.Error(t, err)
			var wait *notify.WaitError
			var failed *notify.FailedError
			require.NotErrorAs(t, err, &wait)
			require.NotErrorAs(t, err, &failed)
			row := b.row(t, id)
			require.Equal(t, "pending", row.State)
			require.Contains(t, row.Error, "503")
			require.False(t, row.OutcomeUnknown)
			b.clock.Advance(time.Minute)
		}
		require.NoError(t, b.deliver(id))
		require.NoError(t, b.deliver(id))
		require.Len(t, b.fake.Posts(), 1)
		require.Equal(t, 5, b.row(t, id).Attempts)
	})

	t.Run("PermanentErrorsFailWithOpsMessage", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name       string
			token      string
			prepare    func(b *testBundle)
			n          jobs.Notification
			code       string
			reason     string
			recipients int // ops messages after two failures of the same cause
		}{
			{"ChannelNotFound", "", nil,
				jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelSlack, Recipient: "#nowhere", Message: simpleMessage("Big deal")},
				"channel_not_found", "Slack channel #nowhere was not found", 1},
			{"NotInChannel", "", func(b *testBundle) { b.fake.AddChannel(slackfake.Channel{Name: "private", Member: false}) },
				jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelSlack, Recipient: "#private", Message: simpleMessage("Big deal")},
				"not_in_channel", "invite it with /invite @pipewatch", 1},
			{"InvalidAuth", "xoxb-wrong", nil, dm("ana@example.com", "Stalled"),
				"invalid_auth", "check SLACK_BOT_TOKEN", 1},
			{"TokenRevoked", "", func(b *testBundle) { b.fake.RevokeToken() }, dm("ana@example.com", "Stalled"),
				"token_revoked", "reinstall the app", 1},
			{"AccountInactive", "", func(b *testBundle) { b.fake.FailMethod("chat.postMessage", "account_inactive") }, dm("ana@example.com", "Stalled"),
				"account_inactive", "bot was deactivated", 1},
			{"UsersNotFound", "", nil, dm("ghost@example.com", "Stalled"),
				"users_not_found", "no Slack user has the email ghost@example.com", 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, setupOpts{token: tt.token, opsChannel: "#revops"})
				b.fake.AddUser(slackfake.User{Email: "ana@example.com", TZ: "America/New_York"})
				b.fake.AddChannel(slackfake.Channel{Name: "revops", Member: true})
				if tt.prepare != nil {
					tt.prepare(b)
				}
				first, second := b.enqueue(t, tt.n), b.enqueue(t, tt.n)

				for _, id := range []int64{first, second} {
					err := b.deliver(id)
					var failed *notify.FailedError
					require.ErrorAs(t, err, &failed)
					require.Equal(t, tt.code, failed.Code)
					require.Contains(t, failed.Reason, tt.reason)
					row := b.row(t, id)
					require.Equal(t, "failed", row.State)
					require.Contains(t, row.Error, tt.reason)
					require.NoError(t, b.deliver(id), "a failed notification is left alone")
				}
				require.Contains(t, b.logs.String(), "level=ERROR msg=\"notify: delivery failed for good\"")
				require.Contains(t, b.logs.String(), "slack_error="+tt.code)

				var ops []int64
				rows, err := b.tx.Query(b.ctx, `SELECT id FROM notifications WHERE kind = 'ops' AND channel = 'channel' AND recipient = '#revops'`)
				require.NoError(t, err)
				for rows.Next() {
					var id int64
					require.NoError(t, rows.Scan(&id))
					ops = append(ops, id)
				}
				require.NoError(t, rows.Err())
				require.Len(t, ops, tt.recipients, "one ops message per cause and day")
				var jobsFor int
				require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE kind = 'deliver_notification' AND (args->>'notification_id')::bigint = $1`, ops[0]).Scan(&jobsFor))
				require.Equal(t, 1, jobsFor, "the ops message is enqueued for delivery")

				if tt.token == "" && tt.code != "token_revoked" && tt.code != "account_inactive" {
					require.NoError(t, b.deliver(ops[0]))
					require.Len(t, b.fake.Posts(), 1)
					require.Contains(t, b.fake.Posts()[0].Text, tt.reason)
				}
			})
		}
	})

	t.Run("OpsMessageFailureDoesNotLoop", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{opsChannel: "#missing-ops"})
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelSlack, Recipient: "#nowhere", Message: simpleMessage("X")})
		var failed *notify.FailedError
		require.ErrorAs(t, b.deliver(id), &failed)
		var ops int64
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT id FROM notifications WHERE kind = 'ops'`).Scan(&ops))
		require.ErrorAs(t, b.deliver(ops), &failed)
		var count int
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT count(*) FROM notifications WHERE kind = 'ops'`).Scan(&count))
		require.Equal(t, 1, count)
	})

	t.Run("UnrenderableMessageFails", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelSlack, Recipient: "#deals",
			Message: notify.Message{Summary: "no title"}})
		var failed *notify.FailedError
		require.ErrorAs(t, b.deliver(id), &failed)
		require.Equal(t, "invalid_message", failed.Code)
		require.Contains(t, b.row(t, id).Error, "message has no title")
	})

	t.Run("ConsoleMode", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{console: true})
		b.addOwner(t, "ana@example.com", "America/Los_Angeles", "", "")
		b.clock.Set(time.Date(2026, 11, 10, 18, 0, 0, 0, time.UTC)) // 10:00 in Los Angeles
		msg := simpleMessage("Stalled deal: Acme")
		msg.Link = &notify.Link{Text: "Open in HubSpot", URL: "https://app.hubspot.com/contacts/1/record/0-3/2"}
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelDM, Recipient: "ana@example.com", Message: msg})

		require.NoError(t, b.deliver(id))
		require.NoError(t, b.deliver(id))
		out := b.console.String()
		require.Equal(t, 1, strings.Count(out, "── Slack message · DM to ana@example.com · alert #"))
		require.Contains(t, out, "Stalled deal: Acme\nSomething needs you.\n  Amount: $1,000\nOpen in HubSpot: https://app.hubspot.com/contacts/1/record/0-3/2\nButtons: [Acknowledge] (alert.ack)\n")
		row := b.row(t, id)
		require.Equal(t, "sent", row.State)
		require.Equal(t, "console", row.DeliveredVia)
		require.Empty(t, row.SlackTS)
		require.Zero(t, b.fake.Calls("chat.postMessage"))

		b.clock.Set(time.Date(2026, 11, 11, 7, 0, 0, 0, time.UTC)) // 23:00 in Los Angeles
		late := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelDM, Recipient: "ana@example.com", Message: msg})
		var wait *notify.WaitError
		require.ErrorAs(t, b.deliver(late), &wait, "quiet hours hold console messages too")
	})

	t.Run("LaterNotificationOfSameAlertUpdatesTheMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddUser(slackfake.User{Email: "ana@example.com", TZ: "America/New_York"})
		alertID := b.alert(t, "")
		n := dm("ana@example.com", "Stalled deal: Acme (warning)")
		n.AlertID = alertID
		first := b.enqueue(t, n)
		require.NoError(t, b.deliver(first))

		b.clock.Set(time.Date(2026, 11, 11, 4, 0, 0, 0, time.UTC)) // 23:00 in New York: an edit notifies nobody
		n.Message = simpleMessage("Stalled deal: Acme (critical)")
		second := b.enqueue(t, n)
		require.NoError(t, b.deliver(second))

		require.Len(t, b.fake.Posts(), 1)
		msgs := b.fake.Messages()
		require.Len(t, msgs, 2)
		require.Equal(t, "chat.update", msgs[1].Method)
		require.Equal(t, b.row(t, first).SlackTS, b.row(t, second).SlackTS)
		current, found := b.fake.Message(msgs[0].Channel, msgs[0].TS)
		require.True(t, found)
		require.Contains(t, current.Text, "(critical)")
	})

	t.Run("UpdateOfDeletedMessagePostsNew", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		alertID := b.alert(t, "")
		n := jobs.Notification{Kind: notify.KindAlert, AlertID: alertID, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("v1")}
		first := b.enqueue(t, n)
		require.NoError(t, b.deliver(first))
		_, err := b.tx.Exec(b.ctx, `UPDATE notifications SET slack_ts = '1.000001' WHERE id = $1`, first) // gone from Slack
		require.NoError(t, err)

		b.clock.Advance(time.Second)
		n.Message = simpleMessage("v2")
		second := b.enqueue(t, n)
		require.NoError(t, b.deliver(second))
		require.Len(t, b.fake.Posts(), 2)
		require.Equal(t, b.fake.Posts()[1].TS, b.row(t, second).SlackTS)
	})

	t.Run("UnknownOutcome", func(t *testing.T) {
		t.Parallel()

		t.Run("UpdatesTheEarlierMessage", func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{})
			b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
			alertID := b.alert(t, "")
			n := jobs.Notification{Kind: notify.KindAlert, AlertID: alertID, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("v1")}
			require.NoError(t, b.deliver(b.enqueue(t, n)))

			// An attempt died after claiming the row: its outcome is unknown.
			n.Message = simpleMessage("v2")
			id := b.enqueue(t, n)
			_, err := b.tx.Exec(b.ctx, `UPDATE notifications SET claimed_at = $2 WHERE id = $1`, id, b.clock.Now())
			require.NoError(t, err)

			var wait *notify.WaitError
			require.ErrorAs(t, b.deliver(id), &wait, "a live claim means an attempt is in flight")
			require.Empty(t, b.fake.Messages()[1:])
			b.clock.Advance(time.Minute + time.Second)
			require.NoError(t, b.deliver(id))
			require.Len(t, b.fake.Posts(), 1, "updating the known message cannot duplicate it")
			require.Equal(t, "chat.update", b.fake.Messages()[1].Method)
			require.Equal(t, 1, b.row(t, id).Attempts, "the dead attempt never got to count itself")
		})

		t.Run("WithoutEarlierMessagePostsAgain", func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{})
			b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
			b.fake.DropResponses("chat.postMessage", 1)
			id := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("Digest")})

			err := b.deliver(id)
			require.Error(t, err)
			row := b.row(t, id)
			require.Equal(t, "pending", row.State)
			require.True(t, row.OutcomeUnknown)

			b.clock.Advance(time.Second)
			require.NoError(t, b.deliver(id))
			require.Len(t, b.fake.Posts(), 2, "the documented trade-off: a possible duplicate, never a lost message")
			require.Contains(t, b.logs.String(), "an earlier attempt may have posted this message")
			require.False(t, b.row(t, id).OutcomeUnknown)
		})
	})

	t.Run("LostLookupResponseIsNotAnUnknownPost", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddUser(slackfake.User{Email: "ana@example.com", TZ: "America/New_York"})
		b.fake.DropResponses("users.lookupByEmail", 1)
		id := b.enqueue(t, dm("ana@example.com", "Stalled"))
		require.Error(t, b.deliver(id))
		row := b.row(t, id)
		require.False(t, row.OutcomeUnknown, "a lookup posts nothing")
		require.Zero(t, row.Attempts, "nothing was claimed")
		require.NoError(t, b.deliver(id))
		require.Len(t, b.fake.Posts(), 1)
		require.NotContains(t, b.logs.String(), "may have posted")
	})

	t.Run("CancelledIsLeftAlone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack, Recipient: "deals", Message: simpleMessage("Digest")})
		_, err := b.tx.Exec(b.ctx, `UPDATE notifications SET state = 'cancelled' WHERE id = $1`, id)
		require.NoError(t, err)
		require.NoError(t, b.deliver(id))
		require.NoError(t, b.deliver(404404))
		require.Empty(t, b.fake.Messages())
	})
}
