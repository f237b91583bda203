package notify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
	"github.com/pipewatch/pipewatch/jobs"
)

const endpoint = "http://pipewatch.test/slack/interactions"

type interactionBundle struct {
	*testBundle
	handler        *notify.InteractionHandler
	presses        []notify.Press
	alertID        int64
	notificationID int64
	message        slackfake.Message // the posted alert
	failHandler    bool
}

// setupInteractions posts an alert with Acknowledge and CRM-link buttons to #deals and
// serves the endpoint with an "alert." handler that acknowledges the alert.
func setupInteractions(t *testing.T) *interactionBundle {
	t.Helper()
	b := &interactionBundle{testBundle: setup(t, setupOpts{})}
	b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
	b.alertID = b.alert(t, "")
	msg := simpleMessage("Stalled deal: Acme")
	msg.Link = &notify.Link{Text: "Open in HubSpot", URL: "https://app.hubspot.com/contacts/1/record/0-3/2"}
	b.notificationID = b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, AlertID: b.alertID, Channel: notify.ChannelSlack, Recipient: "#deals", Message: msg})
	require.NoError(t, b.deliver(b.notificationID))
	b.message = b.fake.Posts()[0]

	actions := notify.NewActions()
	actions.Register("alert.", notify.ActionHandlerFunc(func(ctx context.Context, tx pgx.Tx, p notify.Press) (*notify.Message, error) {
		b.presses = append(b.presses, p)
		if _, err := tx.Exec(ctx, `UPDATE alerts SET state = 'acknowledged' WHERE id = $1`, b.alertID); err != nil {
			return nil, err
		}
		if b.failHandler {
			return nil, errors.New("alert store unavailable")
		}
		return &notify.Message{Title: "Stalled deal: Acme", Summary: "Acknowledged by <@" + p.SlackUserID + ">."}, nil
	}))
	h, err := notify.NewInteractionHandler(notify.InteractionConfig{SigningSecret: b.fake.SigningSecret(), DB: b.tx, Actions: actions,
		Enqueuer: b.enq, NowFunc: b.clock.Now, Logger: slog.New(slog.NewTextHandler(io.MultiWriter(b.logs, testWriter{t}), nil))})
	require.NoError(t, err)
	b.handler = h
	return b
}

func (b *interactionBundle) press(t *testing.T, actionID string, at time.Time) *http.Request {
	t.Helper()
	req, err := b.fake.Press(endpoint, b.message, actionID, "U0ANA", at)
	require.NoError(t, err)
	return req
}

func (b *interactionBundle) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	return rec
}

func (b *interactionBundle) alertState(t *testing.T) string {
	t.Helper()
	var state string
	require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT state FROM alerts WHERE id = $1`, b.alertID).Scan(&state))
	return state
}

func (b *interactionBundle) edits(t *testing.T) []int64 {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, `SELECT id FROM notifications WHERE id <> $1 ORDER BY id`, b.notificationID)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return ids
}

func TestInteractionHandler(t *testing.T) {
	t.Parallel()

	t.Run("PressRunsHandlerAndUpdatesMessage", func(t *testing.T) {
		t.Parallel()
		b := setupInteractions(t)
		res := b.serve(b.press(t, "alert.ack", time.Now()))
		require.Equal(t, http.StatusOK, res.Code)

		require.Equal(t, []notify.Press{{ActionID: "alert.ack", Value: "1", NotificationID: b.notificationID, SlackUserID: "U0ANA"}}, b.presses)
		require.Equal(t, "acknowledged", b.alertState(t))
		edits := b.edits(t)
		require.Len(t, edits, 1)
		edit := b.row(t, edits[0])
		require.Equal(t, "pending", edit.State)
		require.Equal(t, b.message.TS, edit.SlackTS)
		require.Equal(t, b.message.Channel, edit.SlackChannelID)
		var jobCount int
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE kind = 'deliver_notification' AND (args->>'notification_id')::bigint = $1`, edits[0]).Scan(&jobCount))
		require.Equal(t, 1, jobCount, "the update is enqueued with the press")

		b.clock.Set(time.Date(2026, 11, 11, 4, 0, 0, 0, time.UTC)) // 23:00 in New York: edits are not held
		require.NoError(t, b.deliver(edits[0]))
		require.Len(t, b.fake.Posts(), 1)
		last := b.fake.Messages()[len(b.fake.Messages())-1]
		require.Equal(t, "chat.update", last.Method)
		current, found := b.fake.Message(b.message.Channel, b.message.TS)
		require.True(t, found)
		require.Contains(t, current.Text, "Acknowledged by &lt;@U0ANA&gt;.")
	})

	t.Run("LinkButtonNeedsNoHandler", func(t *testing.T) {
		t.Parallel()
		b := setupInteractions(t)
		res := b.serve(b.press(t, notify.LinkActionID, time.Now()))
		require.Equal(t, http.StatusOK, res.Code)
		require.Empty(t, b.presses)
		require.Empty(t, b.edits(t))
	})

	t.Run("Rejected", func(t *testing.T) {
		t.Parallel()
		tests := map[string]func(t *testing.T, b *interactionBundle) *http.Request{
			"ForgedSignature": func(t *testing.T, b *interactionBundle) *http.Request {
				req := b.press(t, "alert.ack", time.Now())
				sig := req.Header.Get("X-Slack-Signature")
				forged := strings.TrimSuffix(sig, sig[len(sig)-1:]) + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(sig, "0")]
				req.Header.Set("X-Slack-Signature", forged)
				return req
			},
			"WrongSecret": func(t *testing.T, b *interactionBundle) *http.Request {
				body, err := io.ReadAll(b.press(t, "alert.ack", time.Now()).Body)
				require.NoError(t, err)
				req, err := slackfake.SignedRequest(endpoint, "not-the-secret", body, time.Now())
				require.NoError(t, err)
				return req
			},
			"TamperedBody": func(t *testing.T, b *interactionBundle) *http.Request {
				req := b.press(t, "alert.ack", time.Now())
				body, err := io.ReadAll(req.Body)
				require.NoError(t, err)
				req.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("U0ANA"), []byte("U0EVE"), 1)))
				return req
			},
			"StaleTimestamp": func(t *testing.T, b *interactionBundle) *http.Request {
				return b.press(t, "alert.ack", time.Now().Add(-6*time.Minute))
			},
			"FutureTimestamp": func(t *testing.T, b *interactionBundle) *http.Request {
				return b.press(t, "alert.ack", time.Now().Add(6*time.Minute))
			},
			"NoSignature": func(t *testing.T, b *interactionBundle) *http.Request {
				req := b.press(t, "alert.ack", time.Now())
				req.Header.Del("X-Slack-Signature")
				return req
			},
		}
		for name, build := range tests {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setupInteractions(t)
				res := b.serve(build(t, b))
				require.Equal(t, http.StatusUnauthorized, res.Code)
				require.Empty(t, b.presses)
				require.Equal(t, "open", b.alertState(t))
				require.Empty(t, b.edits(t))
				require.Contains(t, b.logs.String(), "rejected a Slack interaction request")
			})
		}
	})

	t.Run("ReplayRejected", func(t *testing.T) {
		t.Parallel()
		b := setupInteractions(t)
		req := b.press(t, "alert.ack", time.Now())
		body, err := io.ReadAll(req.Body)
		require.NoError(t, err)
		send := func() int {
			again := req.Clone(context.Background())
			again.Body = io.NopCloser(bytes.NewReader(body))
			return b.serve(again).Code
		}
		require.Equal(t, http.StatusOK, send())
		require.Equal(t, http.StatusUnauthorized, send())
		require.Len(t, b.presses, 1)
		require.Len(t, b.edits(t), 1)
	})

	t.Run("HandlerErrorChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setupInteractions(t)
		b.failHandler = true
		res := b.serve(b.press(t, "alert.ack", time.Now()))
		require.Equal(t, http.StatusInternalServerError, res.Code)
		require.Len(t, b.presses, 1)
		require.Equal(t, "open", b.alertState(t), "the handler's writes are rolled back")
		require.Empty(t, b.edits(t))

		b.failHandler = false
		require.Equal(t, http.StatusOK, b.serve(b.press(t, "alert.ack", time.Now().Add(time.Second))).Code, "a later press works")
	})

	t.Run("NeedsSigningSecret", func(t *testing.T) {
		t.Parallel()
		_, err := notify.NewInteractionHandler(notify.InteractionConfig{})
		require.ErrorContains(t, err, "SLACK_SIGNING_SECRET is not set")
	})
}

func TestActions(t *testing.T) {
	t.Parallel()
	named := func(name string) notify.ActionHandler {
		return notify.ActionHandlerFunc(func(context.Context, pgx.Tx, notify.Press) (*notify.Message, error) {
			return &notify.Message{Title: name}, nil
		})
	}
	actions := notify.NewActions()
	actions.Register("alert.", named("alerts"))
	actions.Register("alert.snooze", named("snoozes"))
	actions.Register("reminder.done", named("done"))

	for actionID, want := range map[string]string{"alert.ack": "alerts", "alert.snooze_3d": "snoozes", "reminder.done": "done"} {
		h := actions.Handler(actionID)
		require.NotNil(t, h, actionID)
		m, err := h.HandleAction(context.Background(), nil, notify.Press{})
		require.NoError(t, err)
		require.Equal(t, want, m.Title, actionID)
	}
	require.Nil(t, actions.Handler("reminder.stop"))
	require.Nil(t, actions.Handler(notify.LinkActionID))
	require.Panics(t, func() { actions.Register("alert.", named("again")) })
	require.Panics(t, func() { actions.Register("", named("all")) })
}
