-- Pricing models' ids change prefix from `pm_` to `pmod_`: `pm_` is Stripe's payment-method
-- prefix (`pm_card_visa`), which saved cards will carry beside pricing models. The ULID body
-- stays, so `pm_01j…` becomes `pmod_01j…`, everywhere the id is kept: the row, the prices and
-- customers that point at it, the events that name it (`object_id` and the JSON they carry,
-- so the event log names objects that exist) and stored idempotent answers (a replay shows
-- the id that works today). Ids outside Kassa (a merchant's copy) are not reachable: README
-- says to map `pm_` to `pmod_` there.
--
-- The foreign keys are checked at commit instead of per statement, so parent and children can
-- change one after the other inside this migration's transaction.
PRAGMA defer_foreign_keys = ON;

UPDATE pricing_models SET id = 'pmod_' || substr(id, 4) WHERE id LIKE 'pm\_%' ESCAPE '\';
UPDATE prices SET pricing_model = 'pmod_' || substr(pricing_model, 4) WHERE pricing_model LIKE 'pm\_%' ESCAPE '\';
UPDATE customers SET pricing_model = 'pmod_' || substr(pricing_model, 4) WHERE pricing_model LIKE 'pm\_%' ESCAPE '\';
UPDATE events SET object_id = 'pmod_' || substr(object_id, 4)
WHERE object_id IN (SELECT 'pm_' || substr(id, 6) FROM pricing_models);

-- Exact quoted ids only, so a payment method's `pm_…` in the same JSON stays as it is. An
-- event naming two pricing models takes a second pass (one replacement per row and pass).
UPDATE events SET data = replace(data, '"pm_' || substr(m.id, 6) || '"', '"' || m.id || '"')
FROM pricing_models AS m WHERE events.data LIKE '%"pm\_' || substr(m.id, 6) || '"%' ESCAPE '\';
UPDATE events SET data = replace(data, '"pm_' || substr(m.id, 6) || '"', '"' || m.id || '"')
FROM pricing_models AS m WHERE events.data LIKE '%"pm\_' || substr(m.id, 6) || '"%' ESCAPE '\';
UPDATE idempotency_keys SET response_body = replace(response_body, '"pm_' || substr(m.id, 6) || '"', '"' || m.id || '"')
FROM pricing_models AS m WHERE idempotency_keys.response_body LIKE '%"pm\_' || substr(m.id, 6) || '"%' ESCAPE '\';
