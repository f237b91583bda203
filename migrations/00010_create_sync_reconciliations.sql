-- Reconciliation state of Full reads. A Full read spans many batches, each committed in its
-- own transaction, so the external ids it has seen are persisted with its cursor: a crash
-- mid-read resumes from the cursor with the seen set intact, and the rows that were not seen
-- are tombstoned only after the last page of a complete read.

-- +goose Up
CREATE TABLE sync_reconciliations (
    connection_id bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    stream        text        NOT NULL,
    cursor        text        NOT NULL DEFAULT '',
    -- Rows synced at or after started_at were confirmed live by some read during this
    -- reconciliation and are never tombstoned by it.
    started_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, stream)
);

-- One row per record seen by an unfinished Full read (duplicates are harmless: the set is
-- only probed). Rows are deleted when the reconciliation finishes.
CREATE TABLE sync_reconciliation_seen (
    connection_id bigint NOT NULL,
    stream        text   NOT NULL,
    entity        text   NOT NULL,
    external_id   text   NOT NULL,
    FOREIGN KEY (connection_id, stream) REFERENCES sync_reconciliations (connection_id, stream) ON DELETE CASCADE
);
CREATE INDEX sync_reconciliation_seen_idx ON sync_reconciliation_seen (connection_id, stream, entity, external_id);

-- +goose Down
DROP TABLE sync_reconciliation_seen, sync_reconciliations;
