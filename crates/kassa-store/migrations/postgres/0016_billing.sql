-- Subscriptions that bill (issue 15): saved payment methods, invoices per period, dunning,
-- credits per period and test clocks. Additive only.

-- The subscription's billing: one item (price × quantity), the cycle anchor every period is
-- counted from (Jan 31 → Feb 28 → Mar 31), cancel at period end, trial, the payment method
-- renewals charge, and a change waiting for the period end (a downgrade).
ALTER TABLE subscriptions ADD COLUMN quantity BIGINT NOT NULL DEFAULT 1;
ALTER TABLE subscriptions ADD COLUMN billing_cycle_anchor BIGINT;
ALTER TABLE subscriptions ADD COLUMN cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE subscriptions ADD COLUMN canceled_at BIGINT;
ALTER TABLE subscriptions ADD COLUMN trial_end BIGINT;
ALTER TABLE subscriptions ADD COLUMN default_payment_method TEXT;
ALTER TABLE subscriptions ADD COLUMN latest_invoice TEXT;
ALTER TABLE subscriptions ADD COLUMN pending_price TEXT;
ALTER TABLE subscriptions ADD COLUMN pending_quantity BIGINT;
CREATE INDEX subscriptions_due ON subscriptions (current_period_end);

-- A recurring price may grant credits for every paid period.
ALTER TABLE prices ADD COLUMN credits_per_period BIGINT NOT NULL DEFAULT 0;

-- Test clocks (test processor only): customers on a clock live at its frozen time.
CREATE TABLE test_clocks (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    frozen_time BIGINT NOT NULL,
    status      TEXT NOT NULL,
    created     BIGINT NOT NULL,
    updated     BIGINT NOT NULL
);
ALTER TABLE customers ADD COLUMN test_clock TEXT REFERENCES test_clocks (id);
-- The saved payment method (processor `pm_…`) new subscriptions charge by default.
ALTER TABLE customers ADD COLUMN default_payment_method TEXT;
CREATE INDEX customers_test_clock ON customers (test_clock);

-- What a subscription owes for one period (or a mid-period change). `lines` is the JSON array
-- of lines as the API shows them. One invoice per (subscription, period) for the first and the
-- renewal invoices, by the unique index, so two servers renewing at once make one.
-- `lease_until` is the claim of a payment attempt in flight (Unix seconds); `attempt_count`
-- fences its outcome and names its processor idempotency key.
CREATE TABLE invoices (
    id                   TEXT PRIMARY KEY,
    customer             TEXT NOT NULL REFERENCES customers (id),
    subscription         TEXT REFERENCES subscriptions (id),
    status               TEXT NOT NULL,
    billing_reason       TEXT NOT NULL,
    currency             TEXT NOT NULL,
    amount_due           BIGINT NOT NULL CHECK (amount_due >= 0),
    amount_paid          BIGINT NOT NULL DEFAULT 0,
    attempt_count        BIGINT NOT NULL DEFAULT 0,
    next_payment_attempt BIGINT,
    period_start         BIGINT NOT NULL,
    period_end           BIGINT NOT NULL,
    lines                TEXT NOT NULL,
    credits              BIGINT NOT NULL DEFAULT 0,
    payment_method       TEXT,
    payment_intent       TEXT,
    last_payment_error   TEXT,
    lease_until          BIGINT,
    paid_at              BIGINT,
    created              BIGINT NOT NULL,
    updated              BIGINT NOT NULL
);
CREATE UNIQUE INDEX invoices_one_per_period ON invoices (subscription, period_start)
    WHERE billing_reason <> 'subscription_update';
CREATE INDEX invoices_subscription ON invoices (subscription, id);
CREATE INDEX invoices_customer ON invoices (customer, id);
CREATE INDEX invoices_due ON invoices (next_payment_attempt);
