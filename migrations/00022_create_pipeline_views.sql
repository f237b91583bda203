-- Views for BI tools over the normalized model, with the same definitions as
-- `pipewatch report` (pipeline/analytics). Names and columns are a public interface: add
-- columns, never rename. Deleted rows (deleted_at set) never appear. Money stays per
-- currency: no view adds amounts of different currencies. Calendar months are UTC.

-- +goose Up

-- pipeline_deals: every live deal with its owner, pipeline and stage resolved.
-- canonical_stage is 'unmapped' while the vendor stage has no standard stage;
-- probability is the deal's own, else its stage's; weighted_amount = amount × probability
-- (a missing probability weighs 0, a missing amount stays NULL).
CREATE VIEW pipeline_deals AS
SELECT d.id                                                   AS deal_id,
       d.connection_id,
       c.name                                                 AS connection_name,
       d.external_id,
       d.name,
       d.amount,
       coalesce(d.currency, '')                               AS currency,
       d.pipeline_id,
       p.name                                                 AS pipeline_name,
       d.stage_id,
       s.name                                                 AS stage_name,
       coalesce(s.canonical_stage, 'unmapped')                AS canonical_stage,
       d.owner_id,
       lower(o.email)                                         AS owner_email,
       o.name                                                 AS owner_name,
       o.team,
       coalesce(nullif(d.forecast_category, ''), 'none')      AS forecast_category,
       coalesce(d.probability, s.probability)                 AS probability,
       d.amount * coalesce(d.probability, s.probability, 0)   AS weighted_amount,
       d.remote_created_at                                    AS created_at,
       d.close_date,
       d.closed_at,
       d.is_closed,
       d.is_won,
       NOT d.is_closed AND d.close_date < (now() AT TIME ZONE 'UTC')::date AS past_close_date
FROM deals d
JOIN connections c ON c.id = d.connection_id
LEFT JOIN pipelines p ON p.id = d.pipeline_id
LEFT JOIN stages s ON s.id = d.stage_id
LEFT JOIN owners o ON o.id = d.owner_id
WHERE d.deleted_at IS NULL;

-- pipeline_open_deals: the live deals still being worked.
CREATE VIEW pipeline_open_deals AS
SELECT * FROM pipeline_deals WHERE NOT is_closed;

-- pipeline_win_rates: deals closed per UTC month of closed_at, owner and currency.
-- win_rate = won ÷ (won + lost) by count; value_win_rate the same by amount (deals
-- without an amount count in the counts only). Add counts across rows for wider rates.
CREATE VIEW pipeline_win_rates AS
SELECT date_trunc('month', closed_at AT TIME ZONE 'UTC')::date              AS month,
       owner_email,
       team,
       currency,
       count(*) FILTER (WHERE is_won)                                        AS won_deals,
       count(*) FILTER (WHERE NOT is_won)                                    AS lost_deals,
       coalesce(sum(amount) FILTER (WHERE is_won), 0)                        AS won_amount,
       coalesce(sum(amount) FILTER (WHERE NOT is_won), 0)                    AS lost_amount,
       round(count(*) FILTER (WHERE is_won)::numeric / count(*), 4)          AS win_rate,
       round(sum(amount) FILTER (WHERE is_won) / nullif(sum(amount), 0), 4)  AS value_win_rate
FROM pipeline_deals
WHERE is_closed AND closed_at IS NOT NULL
GROUP BY 1, 2, 3, 4;

-- pipeline_metrics_by_owner: the open pipeline per owner and currency, now.
-- owner_email NULL with owner_id NULL = deals without an owner.
CREATE VIEW pipeline_metrics_by_owner AS
SELECT owner_id,
       owner_email,
       owner_name,
       team,
       currency,
       count(*)                                        AS open_deals,
       count(*) FILTER (WHERE amount IS NULL)          AS deals_without_amount,
       coalesce(sum(amount), 0)                        AS open_amount,
       coalesce(sum(weighted_amount), 0)               AS weighted_amount,
       count(*) FILTER (WHERE past_close_date)         AS past_close_date_deals,
       coalesce(sum(amount) FILTER (WHERE past_close_date), 0) AS past_close_date_amount
FROM pipeline_open_deals
GROUP BY owner_id, owner_email, owner_name, team, currency;

-- pipeline_lead_velocity: SQL-qualified leads per UTC month (sql_at) for the whole org,
-- and the lead velocity rate = (this month − last month) ÷ last month (NULL when last
-- month had none).
CREATE VIEW pipeline_lead_velocity AS
WITH counts AS (
    SELECT date_trunc('month', sql_at AT TIME ZONE 'UTC')::date AS month, count(*) AS qualified_leads
    FROM leads
    WHERE sql_at IS NOT NULL AND deleted_at IS NULL
    GROUP BY 1
), months AS (
    SELECT generate_series(min(month), date_trunc('month', now() AT TIME ZONE 'UTC')::date,
                           interval '1 month')::date AS month
    FROM counts
)
SELECT m.month,
       coalesce(c.qualified_leads, 0)                                   AS qualified_leads,
       lag(coalesce(c.qualified_leads, 0)) OVER w                       AS previous_month_leads,
       round((coalesce(c.qualified_leads, 0) - lag(coalesce(c.qualified_leads, 0)) OVER w)::numeric
             / nullif(lag(coalesce(c.qualified_leads, 0)) OVER w, 0), 4) AS lead_velocity_rate
FROM months m
LEFT JOIN counts c ON c.month = m.month
WINDOW w AS (ORDER BY m.month);

-- pipeline_close_date_pushes: every recorded push of a live deal's close date to a later
-- date. A deal slipped out of a period when old_close_date is in it and new_close_date
-- after it.
CREATE VIEW pipeline_close_date_pushes AS
SELECT ch.deal_id,
       ch.changed_at,
       left(ch.old_value, 10)::date                               AS old_close_date,
       left(ch.new_value, 10)::date                               AS new_close_date,
       left(ch.new_value, 10)::date - left(ch.old_value, 10)::date AS days_pushed
FROM deal_changes ch
JOIN deals d ON d.id = ch.deal_id AND d.deleted_at IS NULL
WHERE ch.field = 'close_date'
  AND ch.old_value ~ '^\d{4}-\d{2}-\d{2}'
  AND ch.new_value ~ '^\d{4}-\d{2}-\d{2}'
  AND left(ch.new_value, 10)::date > left(ch.old_value, 10)::date;

-- pipeline_unmapped_stages: live vendor stages without a standard stage, with the number
-- of open deals in them. Map them with `stage_map` in the config file.
CREATE VIEW pipeline_unmapped_stages AS
SELECT s.id                                                    AS stage_id,
       c.name                                                  AS connection_name,
       p.name                                                  AS pipeline_name,
       s.external_id,
       s.name                                                  AS stage_name,
       s.probability,
       s.is_closed,
       s.is_won,
       (SELECT count(*) FROM deals d
        WHERE d.stage_id = s.id AND NOT d.is_closed AND d.deleted_at IS NULL) AS open_deals
FROM stages s
JOIN connections c ON c.id = s.connection_id
LEFT JOIN pipelines p ON p.id = s.pipeline_id
WHERE s.canonical_stage IS NULL AND s.deleted_at IS NULL;

-- +goose Down
DROP VIEW pipeline_unmapped_stages, pipeline_close_date_pushes, pipeline_lead_velocity,
    pipeline_metrics_by_owner, pipeline_win_rates, pipeline_open_deals, pipeline_deals;
