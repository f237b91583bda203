-- Indexes for the sync engine's reads of sync_runs: the runs of a stream still marked
-- running (closed as interrupted when the next run starts) and the latest Full run of a
-- stream (the reconciliation schedule), both probed every minute as the table grows.

-- +goose Up
CREATE INDEX sync_runs_running_idx ON sync_runs (connection_id, stream) WHERE status = 'running';
CREATE INDEX sync_runs_full_idx ON sync_runs (connection_id, stream, started_at DESC) WHERE mode <> 'incremental';

-- +goose Down
DROP INDEX sync_runs_running_idx, sync_runs_full_idx;
