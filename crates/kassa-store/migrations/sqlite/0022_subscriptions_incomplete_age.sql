-- Incomplete subscriptions by age (issue 15, `incomplete_expired`): every round of the renewal
-- job asks for the `incomplete` subscriptions created at least 23 hours ago
-- (`kassa_store::billing::aged_subscriptions`, the status written as a literal so that the
-- planner sees it implies this index's condition). Without it the query read the whole table
-- each round; this index holds only the few subscriptions still waiting for their first payment.
CREATE INDEX subscriptions_incomplete_created ON subscriptions (created)
    WHERE status = 'incomplete';
