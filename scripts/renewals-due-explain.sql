-- EXPLAIN of the renewal job's due-subscriptions query (docs/benchmarks.md, "Renewals").
-- On a fresh, migrated PostgreSQL database only (it inserts synthetic rows):
--   kassa migrate && psql -d <db> -f scripts/renewals-due-explain.sql
-- 30,000 canceled subscriptions with periods long past, 10,000 active ones due now, 10,000
-- active ones due next month; 2,000 on a test clock (200 due on the clock).
INSERT INTO products (id, name, active, track_inventory, created, updated) VALUES ('prod_x', 'x', true, false, 0, 0);
INSERT INTO prices (id, product, currency, unit_amount, type, recurring_interval, recurring_interval_count, active, created)
  VALUES ('price_x', 'prod_x', 'usd', 1000, 'recurring', 'month', 1, true, 0);
INSERT INTO test_clocks (id, name, frozen_time, status, created, updated) VALUES ('clock_x', NULL, 1900000000, 'ready', 0, 0);
INSERT INTO customers (id, guest, created, updated, test_clock)
  SELECT 'cus_' || g, false, 0, 0, CASE WHEN g <= 400 THEN 'clock_x' END FROM generate_series(1, 10000) g;
INSERT INTO subscriptions (id, customer, price, status, current_period_start, current_period_end, created, updated)
  SELECT 'sub_c' || g, 'cus_' || (1 + g % 10000), 'price_x', 'canceled', 1600000000 + g, 1602600000 + g, 0, 0 FROM generate_series(1, 30000) g;
INSERT INTO subscriptions (id, customer, price, status, current_period_start, current_period_end, created, updated)
  SELECT 'sub_d' || g, 'cus_' || (1 + g % 10000), 'price_x', 'active', 1700000000 + g, 1702600000 + g, 0, 0 FROM generate_series(1, 10000) g;
INSERT INTO subscriptions (id, customer, price, status, current_period_start, current_period_end, created, updated)
  SELECT 'sub_f' || g, 'cus_' || (1 + g % 10000), 'price_x', 'active', 2000000000 + g, 2002600000 + g, 0, 0 FROM generate_series(1, 10000) g;
ANALYZE;
ANALYZE subscriptions;
PREPARE due4(bigint, bigint) AS
SELECT id FROM (SELECT id, due_at FROM (SELECT t.id, t.current_period_end AS due_at FROM subscriptions t WHERE t.status IN ('trialing', 'active', 'past_due') AND t.current_period_end <= $1 AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer AND c.test_clock IS NOT NULL) ORDER BY t.current_period_end LIMIT $2) AS real_time
 UNION ALL SELECT id, due_at FROM (SELECT t.id, t.current_period_end AS due_at FROM test_clocks k JOIN customers c ON c.test_clock = k.id JOIN subscriptions t ON t.customer = c.id WHERE t.status IN ('trialing', 'active', 'past_due') AND t.current_period_end <= k.frozen_time ORDER BY t.current_period_end LIMIT $2) AS on_clock) AS due ORDER BY due_at LIMIT $2;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE due4(1800000000, 300);
