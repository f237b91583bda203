-- Notifications become a durable outbox: what to say (payload), to whom (channel + recipient),
-- not before when (quiet hours), and a dedupe key so a producer that runs twice enqueues once.

-- +goose Up
ALTER TABLE notifications
    ADD COLUMN kind text NOT NULL DEFAULT 'alert' CHECK (kind IN ('alert', 'digest', 'reminder', 'ops')),
    ADD COLUMN payload jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN not_before timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN dedupe_key text UNIQUE,
    ADD COLUMN slack_channel_id text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('dm', 'channel'));
CREATE INDEX notifications_pending_idx ON notifications (not_before) WHERE state = 'pending';

-- +goose Down
DROP INDEX notifications_pending_idx;
ALTER TABLE notifications
    DROP CONSTRAINT notifications_channel_check,
    DROP COLUMN updated_at,
    DROP COLUMN slack_channel_id,
    DROP COLUMN dedupe_key,
    DROP COLUMN not_before,
    DROP COLUMN payload,
    DROP COLUMN kind;
