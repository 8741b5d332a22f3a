-- Hosted subscription checkout (issue 15, "Starting one"): a checkout session in subscription
-- mode names the recurring price and quantity it starts, and, once paid, the subscription it
-- started (set exactly once, under the session's lock, in the transaction that creates the
-- subscription and its paid first invoice). Additive only.
ALTER TABLE checkout_sessions ADD COLUMN price TEXT;
ALTER TABLE checkout_sessions ADD COLUMN quantity BIGINT;
ALTER TABLE checkout_sessions ADD COLUMN subscription TEXT;
