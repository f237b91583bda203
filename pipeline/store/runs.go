package store

import (
	"context"
	"fmt"
	"time"
)

// RunStatus is the state of a sync_runs row.
type RunStatus string

// Run statuses.
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	// RunSnoozed: the run stopped with its progress committed and will resume from its
	// cursor (rate limited, or its time budget ran out).
	RunSnoozed RunStatus = "snoozed"
	// RunCancelled: the run was stopped (context cancelled, re-authorization needed, or a
	// concurrent run of the same stream).
	RunCancelled RunStatus = "cancelled"
)

// RunMode is how a run read its stream, as recorded in sync_runs.mode.
type RunMode string

// Run modes.
const (
	RunIncremental RunMode = "incremental"
	// RunFull is a Full read without reconciliation.
	RunFull RunMode = "full"
	// RunReconcile is a Full read that tombstones what it did not see.
	RunReconcile RunMode = "reconcile"
)

// RunProgress are the counters of a sync run.
type RunProgress struct {
	Requests, Retries                int64
	Read, Inserted, Updated, Deleted int64
}

// StartRun records a run of (connection, stream) starting at at and returns its id. Runs
// of the same stream still marked running were interrupted (the process stopped): they are
// marked failed.
func StartRun(ctx context.Context, db Querier, connectionID int64, stream string, mode RunMode, at time.Time) (int64, error) {
	if _, err := db.Exec(ctx, `UPDATE sync_runs SET status = 'failed', finished_at = $3,
		error = 'interrupted: the process stopped before the run finished; its committed progress was kept'
		WHERE connection_id = $1 AND stream = $2 AND status = 'running'`, connectionID, stream, at); err != nil {
		return 0, fmt.Errorf("closing interrupted %s runs: %w", stream, err)
	}
	var id int64
	err := db.QueryRow(ctx, `INSERT INTO sync_runs (connection_id, stream, mode, started_at)
		VALUES ($1, $2, $3, $4) RETURNING id`, connectionID, stream, string(mode), at).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording the start of the %s run: %w", stream, err)
	}
	return id, nil
}

// UpdateRun records the committed progress of a running run.
func UpdateRun(ctx context.Context, db Querier, runID int64, p RunProgress) error {
	_, err := db.Exec(ctx, `UPDATE sync_runs SET requests = $2, retries = $3, records_read = $4, inserted = $5,
		updated = $6, deleted = $7 WHERE id = $1`, runID, p.Requests, p.Retries, p.Read, p.Inserted, p.Updated, p.Deleted)
	if err != nil {
		return fmt.Errorf("recording run progress: %w", err)
	}
	return nil
}

// FinishRun records how a run ended. errText is empty on a clean success.
func FinishRun(ctx context.Context, db Querier, runID int64, status RunStatus, p RunProgress, errText string, at time.Time) error {
	var e any
	if errText != "" {
		e = errText
	}
	_, err := db.Exec(ctx, `UPDATE sync_runs SET status = $2, finished_at = $3, requests = $4, retries = $5,
		records_read = $6, inserted = $7, updated = $8, deleted = $9, error = $10 WHERE id = $1`,
		runID, string(status), at, p.Requests, p.Retries, p.Read, p.Inserted, p.Updated, p.Deleted, e)
	if err != nil {
		return fmt.Errorf("recording the end of the run: %w", err)
	}
	return nil
}

// StreamRuns is when a stream's runs started.
type StreamRuns struct {
	// FirstStarted is the start of the stream's first recorded run (zero: never ran).
	FirstStarted time.Time
	// LastStarted is the start of the latest run of any mode (zero: never ran).
	LastStarted time.Time
	// LastFullStarted is the start of the latest Full run (zero: never).
	LastFullStarted time.Time
}

// LastRuns returns, per stream of streams, when its runs started.
func LastRuns(ctx context.Context, db Querier, connectionID int64, streams []string) (map[string]StreamRuns, error) {
	rows, err := db.Query(ctx, `SELECT s.stream,
			(SELECT min(r.started_at) FROM sync_runs r WHERE r.connection_id = $1 AND r.stream = s.stream),
			(SELECT max(r.started_at) FROM sync_runs r WHERE r.connection_id = $1 AND r.stream = s.stream),
			(SELECT max(r.started_at) FROM sync_runs r WHERE r.connection_id = $1 AND r.stream = s.stream AND r.mode <> 'incremental')
		FROM unnest($2::text[]) AS s(stream)`, connectionID, streams)
	if err != nil {
		return nil, fmt.Errorf("reading last runs: %w", err)
	}
	defer rows.Close()
	out := make(map[string]StreamRuns, len(streams))
	for rows.Next() {
		var (
			stream            string
			first, last, full *time.Time
		)
		if err := rows.Scan(&stream, &first, &last, &full); err != nil {
			return nil, fmt.Errorf("reading last runs: %w", err)
		}
		var r StreamRuns
		if first != nil {
			r.FirstStarted = *first
		}
		if last != nil {
			r.LastStarted = *last
		}
		if full != nil {
			r.LastFullStarted = *full
		}
		out[stream] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading last runs: %w", err)
	}
	return out, nil
}
