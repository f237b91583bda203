package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// DeliverNotificationArgs delivers one row of the notifications outbox.
type DeliverNotificationArgs struct {
	NotificationID int64 `json:"notification_id" river:"unique"`
}

// Kind is stable: renaming it would orphan queued jobs.
func (DeliverNotificationArgs) Kind() string { return "deliver_notification" }

// InsertOpts makes a notification's delivery unique while it is pending.
func (DeliverNotificationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueNotify,
		MaxAttempts: 25,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// Inserter enqueues River jobs in the caller's transaction; *river.Client[pgx.Tx] is one.
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Notification is a message to enqueue for delivery.
type Notification struct {
	Kind    notify.Kind
	AlertID int64 // 0 = none
	// ReminderID is the reminder the message is about (0 = none).
	ReminderID int64
	Channel    notify.Channel
	// Recipient is an email for ChannelDM, a Slack channel id or name for ChannelSlack.
	Recipient string
	Message   notify.Message
	// NotBefore is the earliest delivery time (zero = now). Delivery also waits for the
	// recipient's working hours.
	NotBefore time.Time
	// DedupeKey makes enqueueing idempotent: a second Notification with the same key is
	// dropped ("" = no deduplication).
	DedupeKey string
}

// EnqueueNotification writes n to the outbox and schedules its delivery, both in tx, so a
// notification exists exactly when the change that caused it commits. It returns the
// notification id, or 0 when DedupeKey matched an earlier notification.
func EnqueueNotification(ctx context.Context, tx pgx.Tx, inserter Inserter, n Notification) (int64, error) {
	payload, err := json.Marshal(n.Message)
	if err != nil {
		return 0, fmt.Errorf("encoding notification message: %w", err)
	}
	notBefore := n.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now()
	}
	var id int64
	err = tx.QueryRow(ctx, `
		INSERT INTO notifications (kind, alert_id, reminder_id, channel, recipient, payload, not_before, dedupe_key)
		VALUES ($1, NULLIF($2, 0), NULLIF($3, 0), $4, $5, $6, $7, NULLIF($8, ''))
		ON CONFLICT (dedupe_key) DO NOTHING
		RETURNING id`,
		n.Kind, n.AlertID, n.ReminderID, n.Channel, n.Recipient, payload, notBefore, n.DedupeKey,
	).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("inserting notification: %w", err)
	}
	// A job scheduled in the past waits for the leader's scheduler (seconds); only a real
	// delay is scheduled.
	var opts *river.InsertOpts
	if notBefore.After(time.Now()) {
		opts = &river.InsertOpts{ScheduledAt: notBefore}
	}
	if _, err := inserter.InsertTx(ctx, tx, DeliverNotificationArgs{NotificationID: id}, opts); err != nil {
		return 0, fmt.Errorf("enqueueing delivery of notification %d: %w", id, err)
	}
	return id, nil
}
