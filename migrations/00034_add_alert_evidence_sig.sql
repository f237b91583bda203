-- A compact signature of an alert's evidence (the facts its details are built from), so a
-- detect run rebuilds details only for alerts whose facts changed.

-- +goose Up
ALTER TABLE alerts ADD COLUMN evidence_sig text;

-- +goose Down
ALTER TABLE alerts DROP COLUMN evidence_sig;
