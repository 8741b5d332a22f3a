-- The billing portal (issue 15): short-lived sessions whose URL carries a random secret
-- (`<session>_secret_<random>`); only the secret's SHA-256 is stored, so a copy of the
-- database opens no portal.
CREATE TABLE billing_portal_sessions (
    id                     TEXT PRIMARY KEY,
    customer               TEXT NOT NULL REFERENCES customers (id),
    secret_hash            TEXT NOT NULL,
    return_url             TEXT,
    created                BIGINT NOT NULL,
    expires_at             BIGINT NOT NULL,
    -- A card update waiting for 3-D Secure: its PaymentIntent (an authorization, voided
    -- once the card is saved).
    pending_payment_intent TEXT
);
CREATE INDEX billing_portal_sessions_customer ON billing_portal_sessions (customer);

-- The forms of a session that were acted on: one row per form (its nonce), so a double
-- submit does the action once.
CREATE TABLE billing_portal_actions (
    session TEXT NOT NULL REFERENCES billing_portal_sessions (id),
    nonce   TEXT NOT NULL,
    action  TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (session, nonce)
);
