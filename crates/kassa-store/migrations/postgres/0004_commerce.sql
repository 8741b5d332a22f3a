-- Carts, payments, orders, refunds, hosted checkout sessions and the dedupe record of
-- processor events.

CREATE TABLE carts (
    id               TEXT PRIMARY KEY,
    customer         TEXT REFERENCES customers (id),
    -- The customer is signed in: only they may see or change the cart. Other carts (guest
    -- or anonymous) are reachable by whoever holds their unguessable id.
    customer_signed_in BOOLEAN NOT NULL DEFAULT FALSE,
    email            TEXT,
    region           TEXT NOT NULL REFERENCES regions (id),
    currency         TEXT NOT NULL,
    shipping_option  TEXT REFERENCES shipping_options (id),
    shipping_address TEXT,
    billing_address  TEXT,
    -- open | completed | expired
    status           TEXT NOT NULL,
    -- Bumps with every change; a payment is for one version of the cart.
    version          BIGINT NOT NULL,
    subtotal         BIGINT NOT NULL,
    discount_total   BIGINT NOT NULL,
    shipping_total   BIGINT NOT NULL,
    tax_total        BIGINT NOT NULL,
    total            BIGINT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}',
    last_activity    BIGINT NOT NULL,
    completed_at     BIGINT,
    created          BIGINT NOT NULL,
    updated          BIGINT NOT NULL
);
CREATE INDEX carts_expiry ON carts (status, last_activity);
CREATE INDEX carts_customer ON carts (customer, id);

CREATE TABLE cart_lines (
    id          TEXT PRIMARY KEY,
    cart        TEXT NOT NULL REFERENCES carts (id),
    price       TEXT NOT NULL REFERENCES prices (id),
    product     TEXT NOT NULL REFERENCES products (id),
    name        TEXT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    unit_amount BIGINT NOT NULL,
    -- Units of the product's stock this line holds reserved (0 when stock is not tracked).
    reserved    BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    created     BIGINT NOT NULL,
    updated     BIGINT NOT NULL
);
CREATE UNIQUE INDEX cart_lines_one_per_price ON cart_lines (cart, price);

CREATE TABLE payments (
    id                       TEXT PRIMARY KEY,
    -- order: pays a cart; credits: a prepaid-credit top-up.
    purpose                  TEXT NOT NULL,
    cart                     TEXT REFERENCES carts (id),
    cart_version             BIGINT,
    attempt                  BIGINT NOT NULL,
    checkout_session         TEXT,
    customer                 TEXT NOT NULL REFERENCES customers (id),
    amount                   BIGINT NOT NULL,
    currency                 TEXT NOT NULL,
    processor                TEXT NOT NULL,
    processor_payment_intent TEXT UNIQUE,
    -- What confirmed it (a confirmation token or payment method id; never card data), kept
    -- so that a retry after a crash repeats the same processor call.
    source                   TEXT,
    -- pending | requires_action | processing | authorized | succeeded | failed | canceled
    -- | void_pending | voided
    status                   TEXT NOT NULL,
    amount_capturable        BIGINT NOT NULL DEFAULT 0,
    amount_captured          BIGINT NOT NULL DEFAULT 0,
    amount_refunded          BIGINT NOT NULL DEFAULT 0,
    failure_code             TEXT,
    decline_code             TEXT,
    failure_message          TEXT,
    next_action_url          TEXT,
    -- Why a paid payment is being given back: stale (the cart changed) or duplicate (the
    -- cart was already paid).
    void_reason              TEXT,
    created                  BIGINT NOT NULL,
    updated                  BIGINT NOT NULL
);
CREATE UNIQUE INDEX payments_one_per_attempt ON payments (cart, cart_version, attempt);
CREATE INDEX payments_status ON payments (status, updated);
CREATE INDEX payments_customer ON payments (customer, id);

CREATE TABLE orders (
    id                 TEXT PRIMARY KEY,
    -- Exactly one order per cart and per payment.
    cart               TEXT NOT NULL UNIQUE REFERENCES carts (id),
    payment            TEXT NOT NULL UNIQUE REFERENCES payments (id),
    customer           TEXT NOT NULL REFERENCES customers (id),
    email              TEXT,
    region             TEXT NOT NULL,
    currency           TEXT NOT NULL,
    subtotal           BIGINT NOT NULL,
    discount_total     BIGINT NOT NULL,
    shipping_total     BIGINT NOT NULL,
    tax_total          BIGINT NOT NULL,
    total              BIGINT NOT NULL,
    shipping_option    TEXT,
    shipping_address   TEXT,
    billing_address    TEXT,
    -- open | completed | canceled
    status             TEXT NOT NULL,
    -- authorized | captured | partially_refunded | refunded | canceled
    payment_status     TEXT NOT NULL,
    -- not_fulfilled | fulfilled
    fulfillment_status TEXT NOT NULL,
    amount_authorized  BIGINT NOT NULL,
    amount_captured    BIGINT NOT NULL,
    amount_refunded    BIGINT NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    metadata           TEXT NOT NULL DEFAULT '{}',
    created            BIGINT NOT NULL,
    updated            BIGINT NOT NULL,
    CHECK (amount_refunded <= amount_captured)
);
CREATE INDEX orders_customer ON orders (customer, id);

CREATE TABLE order_lines (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    product     TEXT NOT NULL,
    price       TEXT NOT NULL,
    name        TEXT NOT NULL,
    quantity    BIGINT NOT NULL,
    unit_amount BIGINT NOT NULL,
    -- Units taken from tracked stock (given back if the order is canceled).
    stocked     BIGINT NOT NULL
);
CREATE INDEX order_lines_order ON order_lines (order_id);

CREATE TABLE refunds (
    id               TEXT PRIMARY KEY,
    order_id         TEXT REFERENCES orders (id),
    payment          TEXT NOT NULL REFERENCES payments (id),
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    -- pending | succeeded | failed
    status           TEXT NOT NULL,
    reason           TEXT,
    processor_refund TEXT,
    failure_message  TEXT,
    created          BIGINT NOT NULL,
    updated          BIGINT NOT NULL
);
CREATE INDEX refunds_order ON refunds (order_id, id);
CREATE INDEX refunds_status ON refunds (status, updated);

CREATE TABLE checkout_sessions (
    id                TEXT PRIMARY KEY,
    -- cart | credits
    purpose           TEXT NOT NULL,
    cart              TEXT REFERENCES carts (id),
    cart_version      BIGINT,
    customer          TEXT NOT NULL REFERENCES customers (id),
    credits           BIGINT,
    currency          TEXT NOT NULL,
    amount_total      BIGINT NOT NULL,
    lines             TEXT NOT NULL,
    -- open | complete | expired
    status            TEXT NOT NULL,
    -- unpaid | paid | no_payment_required
    payment_status    TEXT NOT NULL,
    success_url       TEXT NOT NULL,
    cancel_url        TEXT,
    processor_session TEXT UNIQUE,
    url               TEXT,
    payment           TEXT,
    order_id          TEXT,
    expires_at        BIGINT NOT NULL,
    created           BIGINT NOT NULL,
    updated           BIGINT NOT NULL
);
CREATE INDEX checkout_sessions_expiry ON checkout_sessions (status, expires_at);

-- Each processor event is handled at most once: this row commits with the event's effects.
CREATE TABLE processor_events (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    received   BIGINT NOT NULL,
    -- How often the event arrived (the processor retries and duplicates deliveries).
    deliveries BIGINT NOT NULL DEFAULT 1
);
