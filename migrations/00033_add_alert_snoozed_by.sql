-- Who snoozed an alert (the Slack user id of the button press), shown on the message.

-- +goose Up
ALTER TABLE alerts ADD COLUMN snoozed_by text;

-- +goose Down
ALTER TABLE alerts DROP COLUMN snoozed_by;
