-- detect compares a run's deal findings with the open alerts by (deal, rule, stage), in a
-- hash join over every open alert. alerts_open_deal_idx covers that comparison, so it
-- reads this index only, not the alerts heap (several times larger: it holds each
-- alert's evidence), and in deal order, the order in which the findings probe it. The
-- index of open alerts by subject no longer needs to cover it: it only keeps one open
-- episode per subject (and is the arbiter of the insert that opens alerts).

-- +goose Up
CREATE INDEX alerts_open_deal_idx ON alerts (deal_id)
    INCLUDE (id, connection_id, rule, stage_id, evidence_hash, state, snoozed_until)
    WHERE state <> 'resolved';
DROP INDEX alerts_subject_open_idx;
CREATE UNIQUE INDEX alerts_subject_open_idx ON alerts (subject_key) WHERE state <> 'resolved';

-- +goose Down
DROP INDEX alerts_subject_open_idx;
CREATE UNIQUE INDEX alerts_subject_open_idx ON alerts (subject_key)
    INCLUDE (id, connection_id, rule, evidence_hash, severity, stage_id, owner_id, team, state, snoozed_until)
    WHERE state <> 'resolved';
DROP INDEX alerts_open_deal_idx;
