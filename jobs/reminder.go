package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

// ReminderArgs fires one follow-up reminder at its due time (reminders.river_job_id).
//
// It is deliberately not a unique job: a rescheduled reminder gets a new job and its row
// names the one that counts, so a superseded job that still runs does nothing.
type ReminderArgs struct {
	ReminderID int64 `json:"reminder_id"`
}

// Kind is stable: renaming it would orphan scheduled reminders.
func (ReminderArgs) Kind() string { return "reminder" }

// InsertOpts puts reminders on the notify queue. A failing reminder (the database away)
// is retried on River's backoff for days before it is given up.
func (ReminderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotify, MaxAttempts: 25}
}

// ReminderWorker fires reminders through reminder.Cadences.Fire, in one transaction with
// the job's completion, so a crash or a restart repeats the whole decision or none of it:
// a reminder is never lost and never sent twice.
type ReminderWorker struct {
	river.WorkerDefaults[ReminderArgs]
	// DB is where reminders live: the pool (a test transaction in tests).
	DB      reminder.Beginner
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// NewReminderWorker builds the worker from deps.
func NewReminderWorker(deps *Deps) *ReminderWorker {
	return &ReminderWorker{DB: deps.Pool, Logger: deps.Logger, NowFunc: deps.now}
}

// Work fires the reminder, or snoozes the job when the reminder is due later.
func (w *ReminderWorker) Work(ctx context.Context, job *river.Job[ReminderArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	cadences := newCadences(client, w.Logger, w.NowFunc)
	var out reminder.Outcome
	err := pgx.BeginFunc(ctx, w.DB, func(tx pgx.Tx) error {
		var err error
		if out, err = cadences.Fire(ctx, tx, job.Args.ReminderID, job.ID); err != nil {
			return err
		}
		if out.Result == reminder.ResultNotYet {
			return nil
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err != nil {
		return fmt.Errorf("firing reminder %d: %w", job.Args.ReminderID, err)
	}
	if out.Result == reminder.ResultNotYet {
		return river.JobSnooze(max(out.Until.Sub(w.NowFunc()), time.Second))
	}
	w.Logger.InfoContext(ctx, "reminders: reminder fired", "reminder_id", job.Args.ReminderID,
		"result", out.Result, "reason", out.Reason)
	return nil
}

// PlanRemindersArgs plans follow-up reminders: new cadences for deals that entered the
// trigger stage, rescheduling, and ending the cadences of deals that stopped qualifying.
// The sync worker enqueues it for its connection after each sync (EnqueuePlanReminders);
// a periodic job plans every connection.
type PlanRemindersArgs struct {
	// ConnectionID limits planning to one connection's deals (0 = all).
	ConnectionID int64 `json:"connection_id,omitempty" river:"unique"`
}

// Kind is stable.
func (PlanRemindersArgs) Kind() string { return "plan_reminders" }

// PlanRemindersDebounce is the window of EnqueuePlanReminders: the syncs of a connection
// that commit within the same window share one planning run, which starts when the window
// ends (so after each of their commits).
const PlanRemindersDebounce = 15 * time.Second

// InsertOpts makes planning unique per scope and debounce window.
func (PlanRemindersArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueDetect,
		MaxAttempts: 10,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByPeriod: PlanRemindersDebounce},
	}
}

// EnqueuePlanReminders enqueues, in the transaction of a sync of connectionID that
// commits at about now, the planning of that connection's reminders. It is the one call
// the sync worker makes for reminders.
func EnqueuePlanReminders(ctx context.Context, tx pgx.Tx, inserter Inserter, connectionID int64, now time.Time) error {
	at := now.Truncate(PlanRemindersDebounce).Add(PlanRemindersDebounce)
	if _, err := inserter.InsertTx(ctx, tx, PlanRemindersArgs{ConnectionID: connectionID}, &river.InsertOpts{ScheduledAt: at}); err != nil {
		return fmt.Errorf("enqueueing the reminder planning of connection %d: %w", connectionID, err)
	}
	return nil
}

// PlanRemindersInterval is how often every connection's reminders are planned, besides
// after each sync: it catches changes of the settings and of reps' time zones.
const PlanRemindersInterval = 15 * time.Minute

// PlanRemindersWorker runs reminder.Cadences.Plan.
type PlanRemindersWorker struct {
	river.WorkerDefaults[PlanRemindersArgs]
	DB      reminder.Beginner
	Logger  *slog.Logger
	NowFunc func() time.Time
}

// NewPlanRemindersWorker builds the worker from deps.
func NewPlanRemindersWorker(deps *Deps) *PlanRemindersWorker {
	return &PlanRemindersWorker{DB: deps.Pool, Logger: deps.Logger, NowFunc: deps.now}
}

// Timeout leaves room for large pipelines (pages of 200 deals, one transaction each).
func (w *PlanRemindersWorker) Timeout(*river.Job[PlanRemindersArgs]) time.Duration {
	return 10 * time.Minute
}

// Work plans.
func (w *PlanRemindersWorker) Work(ctx context.Context, job *river.Job[PlanRemindersArgs]) error {
	cadences := newCadences(river.ClientFromContext[pgx.Tx](ctx), w.Logger, w.NowFunc)
	sum, err := cadences.Plan(ctx, w.DB, reminder.Scope{ConnectionID: job.Args.ConnectionID})
	if err != nil {
		return fmt.Errorf("planning reminders: %w", err)
	}
	w.Logger.InfoContext(ctx, "reminders: planned", "connection_id", job.Args.ConnectionID,
		"started", sum.Started, "rescheduled", sum.Rescheduled, "ended", sum.Ended, "failed", sum.Failed)
	return nil
}

// planRemindersPeriodic plans every connection's reminders on PlanRemindersInterval and
// when a client becomes leader.
func planRemindersPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(PlanRemindersInterval),
		func() (river.JobArgs, *river.InsertOpts) { return PlanRemindersArgs{}, nil },
		&river.PeriodicJobOpts{ID: "plan_reminders", RunOnStart: true})
}

// ReminderClient is what reminders need of River, in the caller's transaction;
// *river.Client[pgx.Tx] is one (an insert-only client will do).
type ReminderClient interface {
	Inserter
	JobCancelTx(ctx context.Context, tx pgx.Tx, jobID int64) (*rivertype.JobRow, error)
}

// RegisterReminderActions routes the buttons of reminder messages (action ids starting
// with reminder.ActionPrefix) to reminder.Cadences.HandleAction.
func RegisterReminderActions(actions *notify.Actions, deps *Deps, client ReminderClient) {
	actions.Register(reminder.ActionPrefix, newCadences(client, deps.Logger, deps.now))
}

func newCadences(client ReminderClient, logger *slog.Logger, now func() time.Time) *reminder.Cadences {
	return reminder.New(reminder.Config{Queue: NewReminderQueue(client), Logger: logger, NowFunc: now})
}

// NewReminderQueue adapts a River client to reminder.Queue: reminder jobs are
// ReminderArgs, messages go through EnqueueNotification as reminder DMs.
func NewReminderQueue(client ReminderClient) reminder.Queue { return riverReminderQueue{client} }

// riverReminderQueue is reminder.Queue on River.
type riverReminderQueue struct{ river ReminderClient }

func (q riverReminderQueue) ScheduleReminder(ctx context.Context, tx pgx.Tx, reminderID int64, at time.Time) (int64, error) {
	res, err := q.river.InsertTx(ctx, tx, ReminderArgs{ReminderID: reminderID}, &river.InsertOpts{ScheduledAt: at})
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

func (q riverReminderQueue) CancelJob(ctx context.Context, tx pgx.Tx, jobID int64) error {
	_, err := q.river.JobCancelTx(ctx, tx, jobID)
	if errors.Is(err, river.ErrNotFound) {
		return nil // finished and cleaned up already
	}
	return err
}

func (q riverReminderQueue) Notify(ctx context.Context, tx pgx.Tx, n reminder.Notice) (int64, error) {
	return EnqueueNotification(ctx, tx, q.river, Notification{
		Kind: notify.KindReminder, ReminderID: n.ReminderID, Channel: notify.ChannelDM, Recipient: n.Recipient,
		Message: n.Message, NotBefore: n.At, DedupeKey: n.DedupeKey,
	})
}
