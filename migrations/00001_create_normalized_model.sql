-- The normalized pipeline model of DESIGN.md §2. Table and column names are a public
-- interface (BI tools read them): add columns, never rename.
--
-- Every synced table carries connection_id + external_id (unique together), the vendor's
-- remote_created_at / remote_updated_at, a deleted_at tombstone, the raw payload and synced_at.
-- References to other synced rows are kept twice: the internal id (resolved when the target
-- row is known) and the vendor's external id (so a reference that arrives before its target
-- is resolved later instead of being lost).

-- +goose Up
CREATE TABLE connections (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL UNIQUE,
    kind           text        NOT NULL CHECK (kind IN ('hubspot', 'salesforce', 'pipedrive', 'mailchimp')),
    config         jsonb       NOT NULL DEFAULT '{}',
    status         text        NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'paused', 'needs_reauth', 'error')),
    status_reason  text,
    last_synced_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Credentials are AES-GCM sealed with PIPEWATCH_SECRET_KEY; the plaintext never reaches the database.
CREATE TABLE connection_credentials (
    connection_id bigint      PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    ciphertext    bytea       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE owners (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id       bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id         text        NOT NULL,
    email               text,
    name                text,
    team                text,
    manager_owner_id    bigint      REFERENCES owners (id) ON DELETE SET NULL,
    manager_external_id text,
    timezone            text,
    slack_user_id       text,
    active              boolean     NOT NULL DEFAULT true,
    remote_created_at   timestamptz,
    remote_updated_at   timestamptz,
    deleted_at          timestamptz,
    raw                 jsonb       NOT NULL DEFAULT '{}',
    synced_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id)
);
CREATE INDEX owners_email_idx ON owners (lower(email));
CREATE INDEX owners_team_idx ON owners (team);

CREATE TABLE accounts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id     bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id       text        NOT NULL,
    name              text,
    domain            text,
    owner_id          bigint      REFERENCES owners (id) ON DELETE SET NULL,
    owner_external_id text,
    remote_created_at timestamptz,
    remote_updated_at timestamptz,
    deleted_at        timestamptz,
    raw               jsonb       NOT NULL DEFAULT '{}',
    synced_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id)
);

CREATE TABLE contacts (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id       bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id         text        NOT NULL,
    email               text,
    name                text,
    account_id          bigint      REFERENCES accounts (id) ON DELETE SET NULL,
    account_external_id text,
    owner_id            bigint      REFERENCES owners (id) ON DELETE SET NULL,
    owner_external_id   text,
    remote_created_at   timestamptz,
    remote_updated_at   timestamptz,
    deleted_at          timestamptz,
    raw                 jsonb       NOT NULL DEFAULT '{}',
    synced_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id)
);
CREATE INDEX contacts_email_idx ON contacts (lower(email));

CREATE TABLE leads (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id     bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id       text        NOT NULL,
    email             text,
    name              text,
    source            text,
    status            text        NOT NULL DEFAULT 'new'
                                  CHECK (status IN ('new', 'mql', 'sql', 'converted', 'disqualified')),
    mql_at            timestamptz,
    sql_at            timestamptz,
    converted_at      timestamptz,
    owner_id          bigint      REFERENCES owners (id) ON DELETE SET NULL,
    owner_external_id text,
    remote_created_at timestamptz,
    remote_updated_at timestamptz,
    deleted_at        timestamptz,
    raw               jsonb       NOT NULL DEFAULT '{}',
    synced_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id)
);
CREATE INDEX leads_sql_at_idx ON leads (sql_at) WHERE sql_at IS NOT NULL;
CREATE INDEX leads_mql_at_idx ON leads (mql_at) WHERE mql_at IS NOT NULL;

CREATE TABLE pipelines (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id     bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id       text        NOT NULL,
    name              text,
    position          integer     NOT NULL DEFAULT 0,
    remote_created_at timestamptz,
    remote_updated_at timestamptz,
    deleted_at        timestamptz,
    raw               jsonb       NOT NULL DEFAULT '{}',
    synced_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id)
);

CREATE TABLE stages (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id        bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id          text        NOT NULL,
    pipeline_id          bigint      REFERENCES pipelines (id) ON DELETE SET NULL,
    pipeline_external_id text,
    name                 text,
    position             integer     NOT NULL DEFAULT 0,
    probability          numeric     CHECK (probability BETWEEN 0 AND 1),
    is_closed            boolean     NOT NULL DEFAULT false,
    is_won               boolean     NOT NULL DEFAULT false,
    canonical_stage      text        CHECK (canonical_stage IN ('lead_generation', 'qualification', 'needs_assessment',
                                                                'proposal', 'negotiation', 'closing',
                                                                'closed_won', 'closed_lost')),
    rot_days             integer     CHECK (rot_days > 0),
    remote_created_at    timestamptz,
    remote_updated_at    timestamptz,
    deleted_at           timestamptz,
    raw                  jsonb       NOT NULL DEFAULT '{}',
    synced_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id)
);

CREATE TABLE deals (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id        bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id          text        NOT NULL,
    name                 text,
    amount               numeric,
    currency             text,
    pipeline_id          bigint      REFERENCES pipelines (id) ON DELETE SET NULL,
    pipeline_external_id text,
    stage_id             bigint      REFERENCES stages (id) ON DELETE SET NULL,
    stage_external_id    text,
    owner_id             bigint      REFERENCES owners (id) ON DELETE SET NULL,
    owner_external_id    text,
    account_id           bigint      REFERENCES accounts (id) ON DELETE SET NULL,
    account_external_id  text,
    close_date           date,
    closed_at            timestamptz,
    is_closed            boolean     NOT NULL DEFAULT false,
    is_won               boolean     NOT NULL DEFAULT false,
    probability          numeric     CHECK (probability BETWEEN 0 AND 1),
    forecast_category    text,
    stage_entered_at     timestamptz,
    last_activity_at     timestamptz,
    next_activity_at     timestamptz,
    remote_created_at    timestamptz,
    remote_updated_at    timestamptz,
    deleted_at           timestamptz,
    raw                  jsonb       NOT NULL DEFAULT '{}',
    synced_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id),
    CHECK (NOT is_won OR is_closed)
);
CREATE INDEX deals_open_idx ON deals (stage_id, owner_id) WHERE NOT is_closed AND deleted_at IS NULL;
CREATE INDEX deals_owner_idx ON deals (owner_id);
CREATE INDEX deals_close_date_idx ON deals (close_date);
CREATE INDEX deals_closed_at_idx ON deals (closed_at) WHERE is_closed;

CREATE TABLE deal_stage_history (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deal_id           bigint      NOT NULL REFERENCES deals (id) ON DELETE CASCADE,
    stage_id          bigint      REFERENCES stages (id) ON DELETE SET NULL,
    stage_external_id text        NOT NULL,
    entered_at        timestamptz NOT NULL,
    exited_at         timestamptz,
    source            text        NOT NULL CHECK (source IN ('vendor', 'observed')),
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (deal_id, stage_external_id, entered_at)
);
CREATE INDEX deal_stage_history_stage_idx ON deal_stage_history (stage_id, entered_at);

CREATE TABLE deal_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deal_id     bigint      NOT NULL REFERENCES deals (id) ON DELETE CASCADE,
    field       text        NOT NULL CHECK (field IN ('close_date', 'amount', 'owner', 'stage')),
    old_value   text,
    new_value   text,
    changed_at  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deal_changes_deal_idx ON deal_changes (deal_id, field, changed_at);
CREATE INDEX deal_changes_changed_at_idx ON deal_changes (field, changed_at);

CREATE TABLE activities (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id       bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    external_id         text        NOT NULL,
    kind                text        NOT NULL CHECK (kind IN ('call', 'email', 'meeting', 'note', 'task')),
    direction           text        CHECK (direction IN ('inbound', 'outbound')),
    subject             text,
    occurred_at         timestamptz,
    done                boolean     NOT NULL DEFAULT true,
    deal_id             bigint      REFERENCES deals (id) ON DELETE SET NULL,
    deal_external_id    text,
    contact_id          bigint      REFERENCES contacts (id) ON DELETE SET NULL,
    contact_external_id text,
    lead_id             bigint      REFERENCES leads (id) ON DELETE SET NULL,
    lead_external_id    text,
    owner_id            bigint      REFERENCES owners (id) ON DELETE SET NULL,
    owner_external_id   text,
    remote_created_at   timestamptz,
    remote_updated_at   timestamptz,
    deleted_at          timestamptz,
    raw                 jsonb       NOT NULL DEFAULT '{}',
    synced_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, external_id)
);
CREATE INDEX activities_deal_idx ON activities (deal_id, occurred_at);

CREATE TABLE sync_cursors (
    connection_id bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    stream        text        NOT NULL,
    cursor        text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, stream)
);

CREATE TABLE sync_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    stream        text        NOT NULL,
    mode          text        NOT NULL DEFAULT 'incremental' CHECK (mode IN ('incremental', 'full', 'reconcile')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text        NOT NULL DEFAULT 'running'
                              CHECK (status IN ('running', 'succeeded', 'failed', 'snoozed', 'cancelled')),
    requests      integer     NOT NULL DEFAULT 0,
    retries       integer     NOT NULL DEFAULT 0,
    records_read  bigint      NOT NULL DEFAULT 0,
    inserted      bigint      NOT NULL DEFAULT 0,
    updated       bigint      NOT NULL DEFAULT 0,
    deleted       bigint      NOT NULL DEFAULT 0,
    error         text
);
CREATE INDEX sync_runs_connection_idx ON sync_runs (connection_id, stream, started_at DESC);

-- A target belongs to one owner (by email, resolved against owners at query time because
-- targets are applied before the owners are synced), one team, or the whole org (both NULL).
CREATE TABLE targets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id     bigint      REFERENCES owners (id) ON DELETE SET NULL,
    owner_email  text,
    team         text,
    period_start date        NOT NULL,
    period_end   date        NOT NULL,
    amount       numeric     NOT NULL CHECK (amount >= 0),
    currency     text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (owner_email IS NULL OR team IS NULL),
    CHECK (period_end >= period_start)
);
CREATE UNIQUE INDEX targets_scope_idx
    ON targets (coalesce(lower(owner_email), ''), coalesce(team, ''), period_start, period_end, currency);

CREATE TABLE alerts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule          text        NOT NULL,
    fingerprint   text        NOT NULL UNIQUE,
    deal_id       bigint      REFERENCES deals (id) ON DELETE CASCADE,
    owner_id      bigint      REFERENCES owners (id) ON DELETE SET NULL,
    team          text,
    severity      text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state         text        NOT NULL DEFAULT 'open'
                              CHECK (state IN ('open', 'snoozed', 'acknowledged', 'resolved')),
    details       jsonb       NOT NULL DEFAULT '{}',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    notified_at   timestamptz,
    snoozed_until timestamptz,
    resolved_at   timestamptz
);
CREATE INDEX alerts_active_idx ON alerts (rule, state) WHERE state <> 'resolved';
CREATE INDEX alerts_deal_idx ON alerts (deal_id);

CREATE TABLE reminders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deal_id      bigint      NOT NULL REFERENCES deals (id) ON DELETE CASCADE,
    owner_id     bigint      REFERENCES owners (id) ON DELETE SET NULL,
    step         integer     NOT NULL CHECK (step > 0),
    due_at       timestamptz NOT NULL,
    state        text        NOT NULL DEFAULT 'scheduled'
                             CHECK (state IN ('scheduled', 'sent', 'skipped', 'cancelled')),
    reason       text,
    river_job_id bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reminders_deal_idx ON reminders (deal_id, step);
CREATE INDEX reminders_due_idx ON reminders (due_at) WHERE state = 'scheduled';

CREATE TABLE notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint      REFERENCES alerts (id) ON DELETE CASCADE,
    reminder_id bigint      REFERENCES reminders (id) ON DELETE CASCADE,
    channel     text        NOT NULL,
    recipient   text        NOT NULL,
    slack_ts    text,
    state       text        NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts    integer     NOT NULL DEFAULT 0,
    sent_at     timestamptz,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_alert_idx ON notifications (alert_id);
CREATE INDEX notifications_reminder_idx ON notifications (reminder_id);

-- Declarative settings from `pipewatch apply` that are not rows of their own (rules, routing,
-- reminders cadence, stage mapping overrides …), one JSON document per key.
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE settings, notifications, reminders, alerts, targets, sync_runs, sync_cursors, activities,
    deal_changes, deal_stage_history, deals, stages, pipelines, leads, contacts, accounts, owners,
    connection_credentials, connections;
