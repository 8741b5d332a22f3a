-- Guests hold capabilities, not just ids: what a guest owns on the store API (a cart, a
-- checkout session, and the order paid from a cart) opens with its client secret as well as
-- its id. Only the SHA-256 of a secret is stored (hex); the secret itself is shown once, in
-- the answer that created the object. Rows made before this migration have none: they open
-- for their signed-in owner (customer JWT) only.
ALTER TABLE carts ADD COLUMN client_secret_hash TEXT;
ALTER TABLE checkout_sessions ADD COLUMN client_secret_hash TEXT;

-- Ids no longer sort in creation order inside a millisecond (their random part is fresh), so
-- the lines of a cart and of an order keep their order explicitly. Older lines (0) keep
-- sorting by id, which was their creation order.
ALTER TABLE cart_lines ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
