-- detect judges idle and stuck in stage by when a deal entered its stage: the CRM's
-- stage_entered_at, else the deal's open stay in that stage in the stage history. This
-- index lists the open deals without the former (few: HubSpot and Pipedrive send it), so
-- detect finds them without a scan and looks their stays up apart, deal by deal, while
-- the scan of every other open deal runs in parallel workers.

-- +goose Up
CREATE INDEX deals_open_unentered_idx ON deals (id) WHERE stage_entered_at IS NULL AND NOT is_closed AND deleted_at IS NULL;

-- +goose Down
DROP INDEX deals_open_unentered_idx;
