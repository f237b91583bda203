-- Indexes the pipeline metrics (pipeline/analytics) need beyond those of 00001: the deal
-- cohort of a period (created in it), the open deals by close date (coverage, past close
-- date), won/lost deals by close time with their owner (win rate, cycle, coverage), leads by
-- creation (lead funnel cohort), and a deal's stage history (stage funnel, reopened deals).

-- +goose Up
CREATE INDEX deals_created_idx ON deals (remote_created_at) WHERE deleted_at IS NULL;
CREATE INDEX deals_open_close_date_idx ON deals (close_date) WHERE NOT is_closed AND deleted_at IS NULL;
CREATE INDEX deals_closed_owner_idx ON deals (closed_at, owner_id) WHERE is_closed AND deleted_at IS NULL;
CREATE INDEX leads_created_idx ON leads (remote_created_at) WHERE deleted_at IS NULL;
CREATE INDEX deal_stage_history_deal_idx ON deal_stage_history (deal_id, stage_id);

-- +goose Down
DROP INDEX deal_stage_history_deal_idx, leads_created_idx, deals_closed_owner_idx, deals_open_close_date_idx,
    deals_created_idx;
