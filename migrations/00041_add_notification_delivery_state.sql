-- What the delivery worker needs to post each notification at most once per attempt and to
-- say where it went.

-- +goose Up
ALTER TABLE notifications
    -- claimed_at is set (and committed) just before a Slack call and cleared when its outcome
    -- is recorded: a set value older than the claim lease means an attempt died mid-call.
    ADD COLUMN claimed_at      timestamptz,
    -- outcome_unknown: an earlier attempt may have posted (crash or lost response after the
    -- request was sent). Delivery then updates a known message if there is one.
    ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false,
    -- delivered_via is where a sent notification went: Slack, or the console when no bot
    -- token is configured.
    ADD COLUMN delivered_via   text CHECK (delivered_via IN ('slack', 'console'));
CREATE INDEX notifications_slack_message_idx ON notifications (slack_channel_id, slack_ts) WHERE slack_ts IS NOT NULL;

-- Signatures of the Slack interaction requests seen in the last minutes: a request replayed
-- inside Slack's five-minute timestamp window is refused.
CREATE TABLE slack_request_signatures (
    signature   text        PRIMARY KEY,
    received_at timestamptz NOT NULL
);
CREATE INDEX slack_request_signatures_received_idx ON slack_request_signatures (received_at);

-- +goose Down
DROP TABLE slack_request_signatures;
DROP INDEX notifications_slack_message_idx;
ALTER TABLE notifications
    DROP COLUMN delivered_via,
    DROP COLUMN outcome_unknown,
    DROP COLUMN claimed_at;
