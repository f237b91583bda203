-- Slack directory lookups made by notification delivery, cached so a burst of DMs to one person
-- costs one users.lookupByEmail and one conversations.open instead of one per message.

-- +goose Up
-- Owner email → Slack user. slack_user_id NULL is a negative entry (no Slack user has the
-- email); it expires sooner than a positive one so a newly invited rep is found the same day.
CREATE TABLE slack_users (
    email         text        PRIMARY KEY CHECK (email = lower(email)),
    slack_user_id text,
    timezone      text,
    looked_up_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- Slack user → the bot's direct-message conversation with them (stable for the pair).
CREATE TABLE slack_dm_channels (
    slack_user_id text        PRIMARY KEY,
    channel_id    text        NOT NULL,
    opened_at     timestamptz NOT NULL
);

-- +goose Down
DROP TABLE slack_dm_channels, slack_users;
