-- Foundation: settings, API keys, idempotency keys, the event outbox and the catalog.
-- Money is BIGINT minor units, timestamps BIGINT Unix seconds, JSON is TEXT.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
    secret_hash TEXT NOT NULL UNIQUE,
    last4       TEXT NOT NULL,
    name        TEXT,
    created     BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE idempotency_keys (
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    locked_until    BIGINT,
    response_status BIGINT,
    response_body   TEXT,
    created         BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created);

CREATE TABLE events (
    id        TEXT PRIMARY KEY,
    type      TEXT NOT NULL,
    object_id TEXT NOT NULL,
    data      TEXT NOT NULL,
    created   BIGINT NOT NULL
);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_object ON events (object_id, id);

CREATE TABLE pricing_models (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    is_default    BOOLEAN NOT NULL,
    default_price TEXT,
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL
);
-- Exactly one default: at most one row may have is_default, and the service keeps one.
CREATE UNIQUE INDEX pricing_models_one_default ON pricing_models (is_default) WHERE is_default;

CREATE TABLE products (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    description        TEXT,
    active             BOOLEAN NOT NULL,
    track_inventory    BOOLEAN NOT NULL,
    inventory_quantity BIGINT NOT NULL DEFAULT 0 CHECK (inventory_quantity >= 0),
    inventory_reserved BIGINT NOT NULL DEFAULT 0 CHECK (inventory_reserved >= 0),
    metadata           TEXT NOT NULL DEFAULT '{}',
    created            BIGINT NOT NULL,
    updated            BIGINT NOT NULL
);

CREATE TABLE prices (
    id                       TEXT PRIMARY KEY,
    product                  TEXT NOT NULL REFERENCES products (id),
    pricing_model            TEXT REFERENCES pricing_models (id),
    currency                 TEXT NOT NULL,
    unit_amount              BIGINT NOT NULL CHECK (unit_amount >= 0),
    type                     TEXT NOT NULL CHECK (type IN ('one_time', 'recurring')),
    recurring_interval       TEXT CHECK (recurring_interval IN ('day', 'week', 'month', 'year')),
    recurring_interval_count BIGINT,
    active                   BOOLEAN NOT NULL,
    nickname                 TEXT,
    created                  BIGINT NOT NULL
);
CREATE INDEX prices_product ON prices (product, id);

CREATE TABLE regions (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    currency      TEXT NOT NULL,
    countries     TEXT NOT NULL DEFAULT '[]',
    tax_rates     TEXT NOT NULL DEFAULT '[]',
    tax_inclusive BOOLEAN NOT NULL,
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL
);

CREATE TABLE shipping_options (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    region   TEXT NOT NULL REFERENCES regions (id),
    currency TEXT NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount >= 0),
    active  BOOLEAN NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX shipping_options_region ON shipping_options (region, id);
