-- Prepaid credits: an append-only ledger; the balance (customers.credit_balance) always
-- equals the sum of a customer's entries and changes only by atomic delta updates.

CREATE TABLE credit_entries (
    id               TEXT PRIMARY KEY,
    customer         TEXT NOT NULL REFERENCES customers (id),
    -- Positive adds credits, negative removes them.
    amount           BIGINT NOT NULL,
    -- top_up | debit | adjustment | refund_reversal
    kind             TEXT NOT NULL,
    -- What caused the entry; unique, so one cause changes the balance at most once
    -- (`top_up:<checkout session>`, `debit:<idempotency key>`, `refund_reversal:<refund>`).
    source           TEXT NOT NULL UNIQUE,
    balance_after    BIGINT NOT NULL,
    reason           TEXT,
    -- Credits a refund reversal could not take back because they were spent.
    shortfall        BIGINT NOT NULL DEFAULT 0,
    payment          TEXT,
    checkout_session TEXT,
    created          BIGINT NOT NULL
);
CREATE INDEX credit_entries_customer ON credit_entries (customer, id);
CREATE INDEX credit_entries_session ON credit_entries (checkout_session);
