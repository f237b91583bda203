-- The partial index over leads whose converted deal (00021) has not arrived yet, like the
-- other references' in 00011: when deals are inserted, the store resolves
-- leads.converted_deal_id through it, so a lead read before its deal costs an index probe,
-- not a scan of the connection's leads.

-- +goose Up
CREATE INDEX leads_converted_deal_unresolved_idx ON leads (connection_id, converted_deal_external_id)
    WHERE converted_deal_id IS NULL AND converted_deal_external_id IS NOT NULL;

-- +goose Down
DROP INDEX leads_converted_deal_unresolved_idx;
