-- Daily totals of the open pipeline per owner, canonical stage and currency, written by the
-- snapshot_pipeline job (one set of rows per day, replaced when the day is taken again), so
-- trends and coverage history can be shown later. owner_id NULL = deals without an owner;
-- canonical_stage 'unmapped' = deals whose stage has no canonical stage yet; currency '' =
-- deals without a currency.

-- +goose Up
CREATE TABLE pipeline_snapshots (
    snapshot_date   date        NOT NULL,
    owner_id        bigint      REFERENCES owners (id) ON DELETE SET NULL,
    canonical_stage text        NOT NULL,
    currency        text        NOT NULL,
    deals           integer     NOT NULL,
    deals_without_amount integer NOT NULL,
    amount          numeric     NOT NULL,
    weighted_amount numeric     NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX pipeline_snapshots_key_idx
    ON pipeline_snapshots (snapshot_date, coalesce(owner_id, 0), canonical_stage, currency);

-- +goose Down
DROP TABLE pipeline_snapshots;
