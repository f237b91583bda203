-- detect reads open alerts by subject (alerts_subject_open_idx), by due time and by
-- escalation time; the per-connection index is no longer read, and only alerts that can
-- escalate need to be in the escalation index. Fewer index entries make a first
-- evaluation, which opens an alert for every existing condition, cheaper.

-- +goose Up
DROP INDEX alerts_connection_active_idx;
DROP INDEX alerts_escalate_idx;
CREATE INDEX alerts_escalate_idx ON alerts (escalate_at)
    WHERE state = 'open' AND escalated_at IS NULL AND escalate_at IS NOT NULL;

-- +goose Down
DROP INDEX alerts_escalate_idx;
CREATE INDEX alerts_escalate_idx ON alerts (escalate_at) WHERE state = 'open' AND escalated_at IS NULL;
CREATE INDEX alerts_connection_active_idx ON alerts (connection_id) WHERE state <> 'resolved';
