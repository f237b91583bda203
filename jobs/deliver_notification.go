package jobs

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// maxDeliveryBackoff caps the wait between retries of a failing delivery, so messages go
// out within minutes of Slack recovering from an outage.
const maxDeliveryBackoff = 5 * time.Minute

// DeliverNotificationWorker delivers one row of the notifications outbox through
// notify.Deliverer and turns the outcome into River's: sent (or already sent) completes,
// a wait (quiet hours, Slack's Retry-After, another attempt in flight) snoozes, a
// permanent failure cancels, anything else retries with capped exponential backoff. A
// delivery that keeps failing transiently is never discarded: past MaxAttempts it snoozes
// for the backoff cap, so a long outage delays messages but loses none.
type DeliverNotificationWorker struct {
	river.WorkerDefaults[DeliverNotificationArgs]
	Deliverer *notify.Deliverer
	Logger    *slog.Logger
	// NowFunc is the clock (nil = time.Now).
	NowFunc func() time.Time
}

// NewDeliverNotificationWorker builds the worker from deps: Slack when deps.Slack is set,
// else the console.
func NewDeliverNotificationWorker(deps *Deps) *DeliverNotificationWorker {
	return &DeliverNotificationWorker{
		Deliverer: notify.NewDeliverer(notify.DelivererConfig{
			DB: deps.Pool, Slack: deps.Slack, Console: deps.Console, Logger: deps.Logger,
			NowFunc: deps.now, OpsChannel: deps.SlackOpsChannel,
		}),
		Logger:  deps.Logger,
		NowFunc: deps.now,
	}
}

func (w *DeliverNotificationWorker) now() time.Time {
	if w.NowFunc != nil {
		return w.NowFunc()
	}
	return time.Now()
}

// Timeout leaves room for a user lookup, a conversations.open and a post.
func (w *DeliverNotificationWorker) Timeout(*river.Job[DeliverNotificationArgs]) time.Duration {
	return 2 * time.Minute
}

// NextRetry backs off 1s, 2s, 4s … up to maxDeliveryBackoff, with 10% jitter.
func (w *DeliverNotificationWorker) NextRetry(job *river.Job[DeliverNotificationArgs]) time.Time {
	backoff := min(time.Second<<min(job.Attempt-1, 16), maxDeliveryBackoff)
	return w.now().Add(backoff + rand.N(backoff/10+1))
}

// Work delivers the notification.
func (w *DeliverNotificationWorker) Work(ctx context.Context, job *river.Job[DeliverNotificationArgs]) error {
	enq := NotificationEnqueuer{Inserter: river.ClientFromContext[pgx.Tx](ctx)}
	err := w.Deliverer.Deliver(ctx, job.Args.NotificationID, enq)
	var wait *notify.WaitError
	var failed *notify.FailedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &wait):
		return river.JobSnooze(max(wait.Until.Sub(w.now()), time.Second))
	case errors.As(err, &failed):
		return river.JobCancel(err)
	case job.Attempt >= job.MaxAttempts:
		w.Logger.WarnContext(ctx, "notify: delivery still failing after every attempt; trying again later",
			"notification_id", job.Args.NotificationID, "attempt", job.Attempt, "error", err)
		return river.JobSnooze(maxDeliveryBackoff)
	default:
		return err
	}
}

// NotificationEnqueuer schedules notification deliveries for package notify (messages to
// revenue ops, the update of a message after a button press) through a River client; an
// insert-only client will do. It is notify.Enqueuer.
type NotificationEnqueuer struct {
	Inserter Inserter
}

// EnqueueDeliveryTx inserts the delivery job of notification id in tx, available at once
// (a job given a ScheduledAt waits for River's scheduler, up to seconds, even when due).
func (e NotificationEnqueuer) EnqueueDeliveryTx(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := e.Inserter.InsertTx(ctx, tx, DeliverNotificationArgs{NotificationID: id}, nil)
	return err
}
