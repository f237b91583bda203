package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is where the outbox lives: a *pgxpool.Pool, or in tests a pgx.Tx (whose Begin opens a
// savepoint).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Enqueuer enqueues the delivery job of a notification row inside tx, so the job exists
// exactly when the row commits; the job runs at once and waits itself for the row's
// not_before and the recipient's hours. jobs.NotificationEnqueuer adapts a River client.
type Enqueuer interface {
	EnqueueDeliveryTx(ctx context.Context, tx pgx.Tx, notificationID int64) error
}

// statePending is the state of a notification waiting for delivery (notifications.state).
const statePending = "pending"

// notification is one outbox row as delivery reads it.
type notification struct {
	ID         int64
	Kind       Kind
	AlertID    *int64
	ReminderID *int64
	Channel    Channel
	Recipient  string
	Message    Message
	State      string
	NotBefore  time.Time
	// SlackChannelID and SlackTS are set before delivery when the row updates a message
	// that already exists (a button press re-rendering it).
	SlackChannelID string
	SlackTS        string
	// AlertTeam is the team of the alert the row is about ("" = none).
	AlertTeam string
}

// errNotificationGone means the row was deleted (its alert or reminder was).
var errNotificationGone = errors.New("notification no longer exists")

func loadNotification(ctx context.Context, db DB, id int64) (notification, error) {
	var n notification
	var payload []byte
	err := db.QueryRow(ctx, `
		SELECT n.id, n.kind, n.alert_id, n.reminder_id, n.channel, n.recipient, n.payload, n.state, n.not_before,
		       coalesce(n.slack_channel_id, ''), coalesce(n.slack_ts, ''), coalesce(a.team, '')
		FROM notifications n LEFT JOIN alerts a ON a.id = n.alert_id
		WHERE n.id = $1`, id,
	).Scan(&n.ID, &n.Kind, &n.AlertID, &n.ReminderID, &n.Channel, &n.Recipient, &payload, &n.State, &n.NotBefore,
		&n.SlackChannelID, &n.SlackTS, &n.AlertTeam)
	if errors.Is(err, pgx.ErrNoRows) {
		return n, errNotificationGone
	}
	if err != nil {
		return n, fmt.Errorf("loading notification %d: %w", id, err)
	}
	if err := json.Unmarshal(payload, &n.Message); err != nil {
		return n, fmt.Errorf("decoding the message of notification %d: %w", id, err)
	}
	return n, nil
}

// slackMessage is a message already in Slack.
type slackMessage struct {
	ChannelID string
	TS        string
}

// keptMessage finds the message sent earlier about the same alert or reminder in the same
// conversation; delivery then updates it instead of posting another.
func keptMessage(ctx context.Context, db DB, n notification) (*slackMessage, error) {
	if n.AlertID == nil && n.ReminderID == nil {
		return nil, nil
	}
	var m slackMessage
	err := db.QueryRow(ctx, `
		SELECT slack_channel_id, slack_ts FROM notifications
		WHERE id <> $1 AND state = 'sent' AND slack_ts IS NOT NULL AND slack_channel_id IS NOT NULL
		  AND channel = $2 AND lower(recipient) = lower($3) AND (alert_id = $4 OR reminder_id = $5)
		ORDER BY sent_at DESC, id DESC
		LIMIT 1`, n.ID, n.Channel, n.Recipient, n.AlertID, n.ReminderID,
	).Scan(&m.ChannelID, &m.TS)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding the earlier message of notification %d: %w", n.ID, err)
	}
	return &m, nil
}

// outgoing is a notification row written by this package: a message for revenue ops, or
// the update of a message after a button press (SlackChannelID and SlackTS set).
type outgoing struct {
	Kind           Kind
	AlertID        *int64
	ReminderID     *int64
	Channel        Channel
	Recipient      string
	Message        Message
	NotBefore      time.Time
	DedupeKey      string
	SlackChannelID string
	SlackTS        string
}

// insertNotification writes o to the outbox and schedules its delivery, both in tx. It
// returns 0 when o.DedupeKey matched an earlier row.
func insertNotification(ctx context.Context, tx pgx.Tx, enq Enqueuer, o outgoing) (int64, error) {
	payload, err := json.Marshal(o.Message)
	if err != nil {
		return 0, fmt.Errorf("encoding notification message: %w", err)
	}
	var id int64
	err = tx.QueryRow(ctx, `
		INSERT INTO notifications (kind, alert_id, reminder_id, channel, recipient, payload, not_before, dedupe_key,
		                           slack_channel_id, slack_ts, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), NULLIF($9, ''), NULLIF($10, ''), $7, $7)
		ON CONFLICT (dedupe_key) DO NOTHING
		RETURNING id`,
		o.Kind, o.AlertID, o.ReminderID, o.Channel, o.Recipient, payload, o.NotBefore, o.DedupeKey, o.SlackChannelID, o.SlackTS,
	).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("inserting %s notification: %w", o.Kind, err)
	}
	if err := enq.EnqueueDeliveryTx(ctx, tx, id); err != nil {
		return 0, fmt.Errorf("enqueueing delivery of notification %d: %w", id, err)
	}
	return id, nil
}
