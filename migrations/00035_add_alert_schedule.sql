-- When an alert is next due to be told (due_at: now for a new one or a severity rise, the
-- end of the cooldown after it was told, the end of a snooze, never while acknowledged)
-- and when an owner alert left open goes into the manager's digest (escalate_at), so
-- detect finds them by index instead of reading every open alert. The evidence signature
-- becomes a hash, kept with the other columns detect compares in the index of open
-- alerts by subject, so comparing a run's findings with the open alerts reads the index
-- only. stage_learned_times caches, per stage, how long the team's won deals stayed in it
-- (stuck in stage).

-- +goose Up
ALTER TABLE alerts
    ADD COLUMN due_at        timestamptz,
    ADD COLUMN escalate_at   timestamptz,
    ADD COLUMN evidence_hash bigint,
    DROP COLUMN evidence_sig;
CREATE INDEX alerts_due_idx ON alerts (due_at) WHERE state = 'open';
CREATE INDEX alerts_escalate_idx ON alerts (escalate_at) WHERE state = 'open' AND escalated_at IS NULL;
DROP INDEX alerts_subject_active_idx;
CREATE UNIQUE INDEX alerts_subject_open_idx ON alerts (subject_key)
    INCLUDE (id, connection_id, rule, evidence_hash, severity, stage_id, owner_id, team, state, snoozed_until)
    WHERE state <> 'resolved';

CREATE TABLE stage_learned_times (
    stage_id        bigint PRIMARY KEY REFERENCES stages (id) ON DELETE CASCADE,
    percentile      double precision NOT NULL,
    window_days     integer          NOT NULL,
    won_deals       integer          NOT NULL,
    percentile_days double precision,
    learned_at      timestamptz      NOT NULL
);

-- +goose Down
DROP TABLE stage_learned_times;
DROP INDEX alerts_subject_open_idx;
CREATE UNIQUE INDEX alerts_subject_active_idx ON alerts (subject_key) WHERE state <> 'resolved';
DROP INDEX alerts_escalate_idx, alerts_due_idx;
ALTER TABLE alerts DROP COLUMN evidence_hash, DROP COLUMN escalate_at, DROP COLUMN due_at, ADD COLUMN evidence_sig text;
