package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

// SnapshotPipelineArgs takes the daily snapshot of open pipeline totals per owner,
// canonical stage and currency (table pipeline_snapshots).
type SnapshotPipelineArgs struct {
	// Date is the UTC day to record as YYYY-MM-DD; empty = today by the worker's clock.
	Date string `json:"date,omitempty"`
}

// Kind is the job kind.
func (SnapshotPipelineArgs) Kind() string { return "snapshot_pipeline" }

// InsertOpts: maintenance queue, one job per day argument while one is queued or running.
func (SnapshotPipelineArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueMaintenance,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Hour},
	}
}

// SnapshotPipelineWorker writes the snapshot with analytics.TakeSnapshot; a day taken
// again is replaced, so retries and reruns are harmless.
type SnapshotPipelineWorker struct {
	river.WorkerDefaults[SnapshotPipelineArgs]
	DB     analytics.DB
	Logger *slog.Logger
	// NowFunc is the clock (nil = time.Now).
	NowFunc func() time.Time
}

// NewSnapshotPipelineWorker builds the worker from deps.
func NewSnapshotPipelineWorker(deps *Deps) *SnapshotPipelineWorker {
	return &SnapshotPipelineWorker{DB: deps.Pool, Logger: deps.Logger, NowFunc: deps.now}
}

// Timeout bounds one aggregate over the open deals.
func (w *SnapshotPipelineWorker) Timeout(*river.Job[SnapshotPipelineArgs]) time.Duration {
	return 5 * time.Minute
}

// Work takes the snapshot.
func (w *SnapshotPipelineWorker) Work(ctx context.Context, job *river.Job[SnapshotPipelineArgs]) error {
	now := time.Now()
	if w.NowFunc != nil {
		now = w.NowFunc()
	}
	day := now.UTC()
	if job.Args.Date != "" {
		d, err := time.Parse(time.DateOnly, job.Args.Date)
		if err != nil {
			return river.JobCancel(fmt.Errorf("parsing snapshot date %q: %w", job.Args.Date, err))
		}
		day = d
	}
	rows, err := analytics.TakeSnapshot(ctx, w.DB, day, now)
	if err != nil {
		return fmt.Errorf("taking pipeline snapshot: %w", err)
	}
	w.Logger.InfoContext(ctx, "snapshot: pipeline totals recorded", "date", day.Format(time.DateOnly), "rows", rows)
	return nil
}

// dailyAt is a periodic schedule firing once a day at a fixed UTC time.
type dailyAt struct{ hour, minute int }

// Next is the first time after t at the schedule's time of day.
func (s dailyAt) Next(t time.Time) time.Time {
	t = t.UTC()
	next := time.Date(t.Year(), t.Month(), t.Day(), s.hour, s.minute, 0, 0, time.UTC)
	if !next.After(t) {
		next = next.AddDate(0, 0, 1)
	}
	return next
}

// snapshotPipelinePeriodicJob snapshots the day's pipeline at 23:50 UTC, and once when
// the leader starts (a later run the same day replaces it).
func snapshotPipelinePeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(dailyAt{hour: 23, minute: 50},
		func() (river.JobArgs, *river.InsertOpts) { return SnapshotPipelineArgs{}, nil },
		&river.PeriodicJobOpts{ID: "snapshot_pipeline", RunOnStart: true})
}
