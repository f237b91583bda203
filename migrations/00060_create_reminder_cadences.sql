-- Follow-up reminders for reps. A cadence is one deal's run of reminders for one entry into
-- the trigger stage (an episode): planned once, rescheduled when the rep's time zone or
-- the configured cadence changes, ended when the deal stops qualifying, the rep stops it,
-- or its last step is done. Its reminders are the rows of `reminders`, each scheduled
-- River job's id kept in reminders.river_job_id.

-- +goose Up
CREATE TABLE reminder_cadences (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deal_id       bigint      NOT NULL REFERENCES deals (id) ON DELETE CASCADE,
    owner_id      bigint      REFERENCES owners (id) ON DELETE SET NULL,
    -- trigger_stage + entered_at identify the episode: the standard stage whose entry
    -- started the cadence, and when the deal entered it.
    trigger_stage text        NOT NULL,
    entered_at    timestamptz NOT NULL,
    state         text        NOT NULL DEFAULT 'active'
                              CHECK (state IN ('active', 'finished', 'stopped', 'cancelled')),
    -- reason says why the cadence ended, ended_by what ended it: its last step, the rep
    -- (Stop button), the deal (closed, deleted, left the stage) or the config (reminders
    -- turned off, another trigger). A deal ended by itself starts a new cadence when it
    -- qualifies again; otherwise only a new entry into the stage does.
    reason        text,
    ended_by      text CHECK (ended_by IN ('last_step', 'rep', 'deal', 'config')),
    -- The rep's time zone the due times were computed in, and where it came from.
    timezone      text        NOT NULL,
    zone_source   text        NOT NULL CHECK (zone_source IN ('crm', 'slack', 'team', 'org', 'default')),
    -- plan_key fingerprints what the schedule was computed from (cadence settings, the
    -- rep's calendar, the owner); a different key means the schedule is recomputed.
    plan_key      text        NOT NULL,
    -- The schedule counts from anchor_at, which stands for step anchor_step (0 = entering
    -- the trigger stage; k = step k, when a touch, a Done or a Snooze re-anchored it).
    anchor_at     timestamptz NOT NULL,
    anchor_step   integer     NOT NULL DEFAULT 0 CHECK (anchor_step >= 0),
    anchor_reason text        NOT NULL,
    -- Touches after since_at (the previous step, or the trigger) skip the next reminder.
    since_at      timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    UNIQUE (deal_id, trigger_stage, entered_at)
);
CREATE UNIQUE INDEX reminder_cadences_active_idx ON reminder_cadences (deal_id) WHERE state = 'active';

ALTER TABLE reminders
    ADD COLUMN cadence_id      bigint REFERENCES reminder_cadences (id) ON DELETE CASCADE,
    ADD COLUMN sent_at         timestamptz,
    ADD COLUMN notification_id bigint REFERENCES notifications (id) ON DELETE SET NULL,
    -- What the rep did with a sent reminder from Slack, when and who (Slack user id).
    ADD COLUMN action          text CHECK (action IN ('done', 'snoozed', 'stopped')),
    ADD COLUMN action_at       timestamptz,
    ADD COLUMN action_by       text;
-- One scheduled reminder per step; a snoozed step gets a new row once its first was sent.
CREATE UNIQUE INDEX reminders_cadence_scheduled_step_idx ON reminders (cadence_id, step) WHERE state = 'scheduled';
CREATE INDEX reminders_cadence_idx ON reminders (cadence_id, step);

-- +goose Down
DROP INDEX reminders_cadence_idx;
DROP INDEX reminders_cadence_scheduled_step_idx;
ALTER TABLE reminders
    DROP COLUMN action_by,
    DROP COLUMN action_at,
    DROP COLUMN action,
    DROP COLUMN notification_id,
    DROP COLUMN sent_at,
    DROP COLUMN cadence_id;
DROP TABLE reminder_cadences;
