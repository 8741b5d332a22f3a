-- Money Kassa does not keep is given back.
--
-- A processor call whose outcome is unknown is never repeated while another request holds it
-- in flight: the request that makes a payment's processor call (or gives its money back)
-- holds the payment until `lease_until` (Unix seconds). A request that finds a live lease
-- answers 409 `payment_in_progress` instead of repeating the call; once the lease has run out
-- (its holder crashed, or gave up at the processor deadline), the call may be repeated with
-- the same idempotency key.
ALTER TABLE payments ADD COLUMN lease_until BIGINT;

-- A charge that carries a payment's `kassa_payment_id` but is not the PaymentIntent Kassa
-- keeps for it (a repeated processor call that the processor did not deduplicate) is a
-- payment row of its own, `void_reason` `duplicate_charge`, naming the payment it duplicates;
-- the unique `processor_payment_intent` makes noticing it exactly-once, and the void job gives
-- it back like any other voided payment.
ALTER TABLE payments ADD COLUMN duplicate_of TEXT REFERENCES payments (id);
CREATE INDEX payments_duplicates ON payments (created) WHERE duplicate_of IS NOT NULL;

-- The test processor lists its PaymentIntents newest first (reconciliation).
CREATE INDEX tp_objects_kind ON tp_objects (kind, id);
