-- The merchant's dashboard (issue 16): the people who sign in to it, their sessions, the
-- throttle of failed sign-ins, and the indexes its order and payment lists filter by.

CREATE TABLE dashboard_users (
    id            TEXT PRIMARY KEY,
    -- Lower-cased: one user per address, whatever its case.
    email         TEXT NOT NULL UNIQUE,
    -- owner | staff | viewer
    role          TEXT NOT NULL CHECK (role IN ('owner', 'staff', 'viewer')),
    -- Argon2id, PHC string format (algorithm, parameters and salt inside).
    password_hash TEXT NOT NULL,
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL
);

-- A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
-- copy of the database opens no session.
CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES dashboard_users (id),
    -- The CSRF token every form of this session carries.
    csrf_token TEXT NOT NULL,
    created    BIGINT NOT NULL,
    expires    BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);

-- Failed sign-ins per (email, client address), to slow guessing down.
CREATE TABLE dashboard_sign_in_failures (
    email        TEXT NOT NULL,
    client       TEXT NOT NULL,
    failures     BIGINT NOT NULL,
    last_failure BIGINT NOT NULL,
    PRIMARY KEY (email, client)
);

-- The dashboard's order list: search by email, filter by status, newest first.
CREATE INDEX orders_email ON orders (lower(email), id);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_payment_status ON orders (payment_status, id);
CREATE INDEX orders_created ON orders (created);
CREATE INDEX payments_status_id ON payments (status, id);
