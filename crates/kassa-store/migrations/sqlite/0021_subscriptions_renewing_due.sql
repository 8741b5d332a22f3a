-- Due subscriptions (issue 15): the renewal job asks for subscriptions in a renewing status
-- whose period ended (`status IN ('trialing', 'active', 'past_due') AND current_period_end <=
-- now`, the statuses written as literals by `kassa_store::billing::due_subscriptions`). The
-- index of 0016 on `current_period_end` alone also holds every canceled subscription, whose
-- period end stays in the past for ever: the range grew with every cancel and was walked on
-- every round of the job (30,000 canceled rows: 60 ms per due query; with this index 1.3 ms,
-- docs/benchmarks.md). This one holds only the renewing subscriptions.
CREATE INDEX subscriptions_renewing_due ON subscriptions (current_period_end)
    WHERE status IN ('trialing', 'active', 'past_due');
