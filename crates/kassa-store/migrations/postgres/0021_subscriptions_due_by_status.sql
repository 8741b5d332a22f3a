-- Due subscriptions by status (issue 15): the renewal job asks for subscriptions in a renewing
-- status whose period ended (`status IN (…) AND current_period_end <= now`). The index of
-- 0016 on `current_period_end` alone also holds every canceled subscription, whose period end
-- stays in the past forever: the range would grow with every cancel and be walked on every
-- round of the job. Led by the status, the scan covers only the renewing ones that are due.
CREATE INDEX subscriptions_status_due ON subscriptions (status, current_period_end);
