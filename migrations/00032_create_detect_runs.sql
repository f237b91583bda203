-- One row per alert evaluation (`detect`): when it ran, which connections it evaluated or
-- skipped and why, and what it changed. alert_baselines marks the scopes (a connection, or
-- the org for coverage and lead velocity) whose existing conditions were already recorded
-- silently, so only later crossings notify.

-- +goose Up
CREATE TABLE detect_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id bigint REFERENCES connections (id) ON DELETE SET NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    scopes        jsonb       NOT NULL DEFAULT '[]',
    opened        integer     NOT NULL DEFAULT 0,
    updated       integer     NOT NULL DEFAULT 0,
    resolved      integer     NOT NULL DEFAULT 0,
    notifications integer     NOT NULL DEFAULT 0
);
CREATE INDEX detect_runs_started_idx ON detect_runs (started_at DESC);

CREATE TABLE alert_baselines (
    scope        text PRIMARY KEY,
    run_id       bigint      REFERENCES detect_runs (id) ON DELETE SET NULL,
    baselined_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE alert_baselines, detect_runs;
