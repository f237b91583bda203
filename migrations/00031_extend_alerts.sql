-- Alert lifecycle: an alert belongs to one subject (rule + deal + stage, or rule + target
-- scope) and one episode. At most one episode per subject is active (not resolved); a later
-- recurrence opens a new episode with its own fingerprint. The notified_* columns remember
-- what was last said, so a run re-notifies only when severity rises, the stage changes, a
-- snooze ends or the cooldown passes.

-- +goose Up
ALTER TABLE alerts
    ADD COLUMN connection_id      bigint REFERENCES connections (id) ON DELETE CASCADE,
    ADD COLUMN subject_key        text,
    ADD COLUMN stage_id           bigint REFERENCES stages (id) ON DELETE SET NULL,
    ADD COLUMN opened_run_id      bigint,
    ADD COLUMN notified_severity  text CHECK (notified_severity IN ('info', 'warning', 'critical')),
    ADD COLUMN notified_stage_id  bigint,
    ADD COLUMN notified_via       text CHECK (notified_via IN ('dm', 'digest', 'channel', 'baseline', 'unrouted')),
    ADD COLUMN notified_recipient text,
    ADD COLUMN notification_id    bigint REFERENCES notifications (id) ON DELETE SET NULL,
    ADD COLUMN notify_count       integer NOT NULL DEFAULT 0,
    ADD COLUMN escalated_at       timestamptz,
    ADD COLUMN acknowledged_at    timestamptz,
    ADD COLUMN acknowledged_by    text,
    ADD COLUMN resolution         text;
CREATE UNIQUE INDEX alerts_subject_active_idx ON alerts (subject_key) WHERE state <> 'resolved';
CREATE INDEX alerts_connection_active_idx ON alerts (connection_id) WHERE state <> 'resolved';

-- +goose Down
DROP INDEX alerts_connection_active_idx;
DROP INDEX alerts_subject_active_idx;
ALTER TABLE alerts
    DROP COLUMN resolution,
    DROP COLUMN acknowledged_by,
    DROP COLUMN acknowledged_at,
    DROP COLUMN escalated_at,
    DROP COLUMN notify_count,
    DROP COLUMN notification_id,
    DROP COLUMN notified_recipient,
    DROP COLUMN notified_via,
    DROP COLUMN notified_stage_id,
    DROP COLUMN notified_severity,
    DROP COLUMN opened_run_id,
    DROP COLUMN stage_id,
    DROP COLUMN subject_key,
    DROP COLUMN connection_id;
