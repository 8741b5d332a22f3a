-- Customers and subscriptions.

CREATE TABLE customers (
    id                    TEXT PRIMARY KEY,
    email                 TEXT,
    -- lower(email), for lookups: one guest customer per email.
    email_lower           TEXT,
    name                  TEXT,
    -- `sub` of the merchant's customer JWT.
    external_id           TEXT UNIQUE,
    guest                 INTEGER NOT NULL,
    email_verified        INTEGER NOT NULL DEFAULT 0,
    pricing_model         TEXT REFERENCES pricing_models (id),
    -- The customer at the payment processor (Stripe `cus_…`), created once.
    processor_customer    TEXT,
    -- Lease of the request creating the processor customer, so that racing requests wait
    -- for it instead of creating a second one.
    processor_claim_until BIGINT,
    credit_balance        BIGINT NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
    metadata              TEXT NOT NULL DEFAULT '{}',
    created               BIGINT NOT NULL,
    updated               BIGINT NOT NULL
);
CREATE UNIQUE INDEX customers_one_guest_per_email ON customers (email_lower) WHERE guest;
CREATE INDEX customers_email ON customers (email_lower);

CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    customer             TEXT NOT NULL REFERENCES customers (id),
    price                TEXT NOT NULL REFERENCES prices (id),
    status               TEXT NOT NULL,
    current_period_start BIGINT NOT NULL,
    current_period_end   BIGINT NOT NULL,
    created              BIGINT NOT NULL,
    updated              BIGINT NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (customer, id);
