-- The deal a lead converted into, so the lead funnel can follow a lead to a won deal
-- (Salesforce Lead.ConvertedOpportunityId, a HubSpot contact's associated deal, a Pipedrive
-- lead converted to a deal). Kept twice like every reference: the vendor id as read and the
-- internal id once the deal is known.

-- +goose Up
ALTER TABLE leads
    ADD COLUMN converted_deal_external_id text,
    ADD COLUMN converted_deal_id          bigint REFERENCES deals (id) ON DELETE SET NULL;
CREATE INDEX leads_converted_deal_idx ON leads (converted_deal_id) WHERE converted_deal_id IS NOT NULL;

-- +goose Down
ALTER TABLE leads DROP COLUMN converted_deal_id, DROP COLUMN converted_deal_external_id;
