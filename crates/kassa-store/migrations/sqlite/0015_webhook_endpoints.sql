-- Webhooks to the merchant (SPEC §9): endpoints, one delivery per (event, endpoint), and the
-- log of every attempt.
--
-- Events are fanned out to deliveries by a job, not in the transaction that records them:
-- `events.webhooks_fanned_out_at` is NULL until the job has made the event's deliveries, so
-- recording an event stays one INSERT. Events recorded before this migration count as done.
ALTER TABLE events ADD COLUMN webhooks_fanned_out_at BIGINT;
UPDATE events SET webhooks_fanned_out_at = created;
CREATE INDEX events_webhooks_pending ON events (id) WHERE webhooks_fanned_out_at IS NULL;

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    description     TEXT,
    -- JSON array of event types, or ["*"].
    enabled_events  TEXT NOT NULL,
    api_version     TEXT,
    status          TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    -- Why a disabled endpoint is disabled: 'manual' (the merchant) or 'failing' (the schedule).
    disabled_reason TEXT,
    -- The signing secret, sealed with `webhooks.secret_key` (see services::webhook_endpoints).
    secret          TEXT NOT NULL,
    -- The secret before the last roll, signing beside the new one until it expires.
    previous_secret TEXT,
    previous_secret_expires BIGINT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created         BIGINT NOT NULL,
    updated         BIGINT NOT NULL
);

-- One row per (event, endpoint). `next_attempt_ms` is when it is due (Unix milliseconds);
-- a claim moves it past the attempt's lease, so a server that dies mid-attempt leaves it due
-- again. `claims` counts claims and fences a late outcome; `step` is the position in the
-- retry schedule (a resend starts it again).
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    event           TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    claims          BIGINT NOT NULL DEFAULT 0,
    step            BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT,
    created         BIGINT NOT NULL,
    updated         BIGINT NOT NULL,
    UNIQUE (event, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint, id);

-- The delivery log: every attempt, kept `webhooks.retention_days`.
CREATE TABLE webhook_attempts (
    id            TEXT PRIMARY KEY,
    delivery      TEXT NOT NULL,
    event         TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    url           TEXT NOT NULL,
    succeeded     BIGINT NOT NULL,
    status_code   BIGINT,
    latency_ms    BIGINT NOT NULL,
    error         TEXT,
    response_body TEXT,
    created       BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event, id);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint, id);
CREATE INDEX webhook_attempts_created ON webhook_attempts (created);
