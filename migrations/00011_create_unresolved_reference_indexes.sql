-- Partial indexes over references whose target has not arrived yet (internal id NULL, vendor
-- id known). When a target row is inserted, the store resolves the references waiting for it
-- through these indexes, so the cost is proportional to the dangling rows, not the table.

-- +goose Up
CREATE INDEX owners_manager_unresolved_idx ON owners (connection_id, manager_external_id)
    WHERE manager_owner_id IS NULL AND manager_external_id IS NOT NULL;
CREATE INDEX accounts_owner_unresolved_idx ON accounts (connection_id, owner_external_id)
    WHERE owner_id IS NULL AND owner_external_id IS NOT NULL;
CREATE INDEX contacts_account_unresolved_idx ON contacts (connection_id, account_external_id)
    WHERE account_id IS NULL AND account_external_id IS NOT NULL;
CREATE INDEX contacts_owner_unresolved_idx ON contacts (connection_id, owner_external_id)
    WHERE owner_id IS NULL AND owner_external_id IS NOT NULL;
CREATE INDEX leads_owner_unresolved_idx ON leads (connection_id, owner_external_id)
    WHERE owner_id IS NULL AND owner_external_id IS NOT NULL;
CREATE INDEX stages_pipeline_unresolved_idx ON stages (connection_id, pipeline_external_id)
    WHERE pipeline_id IS NULL AND pipeline_external_id IS NOT NULL;
CREATE INDEX deals_pipeline_unresolved_idx ON deals (connection_id, pipeline_external_id)
    WHERE pipeline_id IS NULL AND pipeline_external_id IS NOT NULL;
CREATE INDEX deals_stage_unresolved_idx ON deals (connection_id, stage_external_id)
    WHERE stage_id IS NULL AND stage_external_id IS NOT NULL;
CREATE INDEX deals_owner_unresolved_idx ON deals (connection_id, owner_external_id)
    WHERE owner_id IS NULL AND owner_external_id IS NOT NULL;
CREATE INDEX deals_account_unresolved_idx ON deals (connection_id, account_external_id)
    WHERE account_id IS NULL AND account_external_id IS NOT NULL;
CREATE INDEX activities_deal_unresolved_idx ON activities (connection_id, deal_external_id)
    WHERE deal_id IS NULL AND deal_external_id IS NOT NULL;
CREATE INDEX activities_contact_unresolved_idx ON activities (connection_id, contact_external_id)
    WHERE contact_id IS NULL AND contact_external_id IS NOT NULL;
CREATE INDEX activities_lead_unresolved_idx ON activities (connection_id, lead_external_id)
    WHERE lead_id IS NULL AND lead_external_id IS NOT NULL;
CREATE INDEX activities_owner_unresolved_idx ON activities (connection_id, owner_external_id)
    WHERE owner_id IS NULL AND owner_external_id IS NOT NULL;
CREATE INDEX deal_stage_history_stage_unresolved_idx ON deal_stage_history (stage_external_id)
    WHERE stage_id IS NULL;

-- +goose Down
DROP INDEX owners_manager_unresolved_idx, accounts_owner_unresolved_idx, contacts_account_unresolved_idx,
    contacts_owner_unresolved_idx, leads_owner_unresolved_idx, stages_pipeline_unresolved_idx,
    deals_pipeline_unresolved_idx, deals_stage_unresolved_idx, deals_owner_unresolved_idx,
    deals_account_unresolved_idx, activities_deal_unresolved_idx, activities_contact_unresolved_idx,
    activities_lead_unresolved_idx, activities_owner_unresolved_idx, deal_stage_history_stage_unresolved_idx;
