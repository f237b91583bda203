-- OAuth refresh tokens rotate: the worker saves each rotated grant over the one that
-- `pipewatch apply` stored. To tell "the environment still holds the token applied last
-- time" (keep the rotated grant) from "a person put a new grant in the environment"
-- (replace it), apply keeps the refresh token it last read, sealed with
-- PIPEWATCH_SECRET_KEY like the credentials themselves.

-- +goose Up
ALTER TABLE connection_credentials ADD COLUMN applied_refresh_token bytea;

-- +goose Down
ALTER TABLE connection_credentials DROP COLUMN applied_refresh_token;
