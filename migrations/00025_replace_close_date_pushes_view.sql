-- pipeline_close_date_pushes parses close dates only where they look like real dates (a
-- CASE guard: a WHERE clause does not order the regex check before the cast), so one odd
-- value in deal_changes can't break the view.

-- +goose Up
CREATE OR REPLACE VIEW pipeline_close_date_pushes AS
SELECT deal_id, changed_at, old_close_date, new_close_date, new_close_date - old_close_date AS days_pushed
FROM (
    SELECT ch.deal_id,
           ch.changed_at,
           CASE WHEN ch.old_value ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])'
                THEN left(ch.old_value, 10)::date END AS old_close_date,
           CASE WHEN ch.new_value ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])'
                THEN left(ch.new_value, 10)::date END AS new_close_date
    FROM deal_changes ch
    JOIN deals d ON d.id = ch.deal_id AND d.deleted_at IS NULL
    WHERE ch.field = 'close_date'
) pushes
WHERE new_close_date > old_close_date;

-- +goose Down
CREATE OR REPLACE VIEW pipeline_close_date_pushes AS
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
