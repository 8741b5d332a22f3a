-- The built-in `test` processor (Stripe's test mode, offline). Its own tables, prefixed `tp_`,
-- so that they never mix with Kassa's: what lives here is "the processor's side".

-- Every processor object as the JSON Stripe would return (PaymentIntent, Charge, Refund,
-- Customer, PaymentMethod, ConfirmationToken, Checkout Session).
CREATE TABLE tp_objects (
    id       TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    -- The customer the object belongs to (saved payment methods are listed by it).
    customer TEXT,
    -- The object this one hangs off: a charge's PaymentIntent, a refund's charge, a
    -- checkout session's PaymentIntent hangs off the session. Lets one statement load an
    -- object with its children.
    parent   TEXT,
    data     TEXT NOT NULL,
    created  BIGINT NOT NULL,
    updated  BIGINT NOT NULL,
    -- When the processor must act on the object by itself (an open checkout session expires).
    due_at   BIGINT
);
CREATE INDEX tp_objects_customer ON tp_objects (customer, kind, id);
CREATE INDEX tp_objects_parent ON tp_objects (parent);
CREATE INDEX tp_objects_due ON tp_objects (kind, due_at) WHERE due_at IS NOT NULL;

-- Idempotency keys of processor calls, Stripe style: the first result is replayed.
CREATE TABLE tp_idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    created     BIGINT NOT NULL
);
CREATE INDEX tp_idempotency_created ON tp_idempotency (created);

-- Webhook events and their delivery state. Times of delivery are Unix milliseconds so that
-- retries can back off in milliseconds in tests.
CREATE TABLE tp_events (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    -- The exact body that is delivered (and signed), the same bytes on every attempt.
    data            TEXT NOT NULL,
    created         BIGINT NOT NULL,
    delivered_at    BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A server that claimed the event for delivery holds it until then (milliseconds).
    claimed_until   BIGINT
);
CREATE INDEX tp_events_due ON tp_events (next_attempt_at) WHERE delivered_at IS NULL;
